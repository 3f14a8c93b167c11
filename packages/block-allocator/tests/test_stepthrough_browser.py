"""The step-through page in a real browser: headless Chromium, driven by the keyboard.

At every step the page's DOM (each block's state and ref_cnt, the free queue's order, the
block tables, the hash chains) must equal the snapshot the recorder took from the pool.
Needs Chromium (Debian: `apt-get install chromium`; CI installs it) and the `playwright`
package from the test extra; without a browser the test skips and says why, except on CI
(CI=true), where a missing browser is a failure.
"""

from __future__ import annotations

import io
import os
import shutil
from pathlib import Path

import pytest

from block_allocator.stepthrough import Recorder, record_scenario

pytestmark = pytest.mark.extended

CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
FLAGS = [
    "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip


def _unavailable(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"the browser test must run on CI: {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def browser():
    executable = os.environ.get("CHROMIUM") or next(
        filter(None, map(shutil.which, CANDIDATES)), None
    )
    if executable is None:
        _unavailable("no Chromium on PATH (apt-get install chromium, or set CHROMIUM=/path)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("the playwright package is missing (pip install 'block-allocator[test]')")
    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=executable, args=FLAGS)
        yield chromium
        chromium.close()


def page_state(page) -> dict:
    return page.evaluate(
        """() => ({
        step: Number(document.body.dataset.step),
        blocks: [...document.querySelectorAll('#pool .cell')].map(c =>
            [Number(c.dataset.blockId), c.dataset.state, Number(c.dataset.ref)]),
        free_queue: [...document.querySelectorAll('#free-queue li[data-block-id]')].map(
            li => Number(li.dataset.blockId)),
        tables: Object.fromEntries([...document.querySelectorAll('#tables .table')].map(row =>
            [row.dataset.request, [...row.querySelectorAll('.entry')].map(
                e => Number(e.dataset.blockId))])),
        chains: Object.fromEntries([...document.querySelectorAll('#chains .chain')].map(row =>
            [row.dataset.request, [...row.querySelectorAll('.link')].map(
                e => [e.dataset.hash, e.dataset.block === '' ? null : Number(e.dataset.block)])])),
        call: document.querySelector('#now .call').textContent,
        current: document.querySelector('#log li.current').dataset.step,
    })"""
    )


def expected_state(rec: Recorder, i: int) -> dict:
    step = rec.steps[i]
    snap = step.snapshot
    return {
        "step": i,
        "blocks": [[b["id"], b["state"], b["ref"]] for b in snap.blocks],
        "free_queue": snap.free_queue,
        "tables": snap.tables,
        "chains": {r: [[c["hash"], c["block"]] for c in ch] for r, ch in snap.chains.items()},
        "call": step.call,
        "current": str(i),
    }


def open_page(browser, path: Path):
    page = browser.new_page(viewport={"width": 1200, "height": 800})
    outside: list[str] = []

    def only_the_file(route) -> None:
        if route.request.url.startswith("file://"):
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    page.route("**/*", only_the_file)
    page.goto(path.as_uri())
    return page, outside


@pytest.mark.parametrize("name", ["biography", "beam"])
def test_keyboard_steps_show_exactly_the_recorded_state(browser, tmp_path: Path, name: str) -> None:
    rec = record_scenario(name)
    page, outside = open_page(browser, rec.write_page(tmp_path / f"{name}.html"))
    last = len(rec.steps) - 1
    for i in range(last + 1):
        assert page_state(page) == expected_state(rec, i)
        page.keyboard.press("ArrowRight")
    assert page_state(page)["step"] == last  # stops at the end
    for key, want in (("ArrowLeft", last - 1), ("Home", 0), ("End", last), ("ArrowLeft", last - 1)):
        page.keyboard.press(key)
        assert page_state(page) == expected_state(rec, want)
    assert outside == []  # nothing outside the file was requested
    page.close()


def test_scrub_and_play_controls(browser, tmp_path: Path) -> None:
    rec = record_scenario("beam")
    page, _ = open_page(browser, rec.write_page(tmp_path / "beam.html"))
    page.fill("#scrub", "4")  # drags the slider: an input event
    page.dispatch_event("#scrub", "input")
    assert page_state(page) == expected_state(rec, 4)
    page.select_option("#speed", "300")
    page.keyboard.press("Home")
    page.keyboard.press(" ")
    page.wait_for_function(f"document.body.dataset.step === '{len(rec.steps) - 1}'", timeout=15000)
    assert page_state(page) == expected_state(rec, len(rec.steps) - 1)
    page.close()


def test_screenshot_is_not_blank(browser, tmp_path: Path) -> None:
    image = pytest.importorskip("PIL.Image", reason="Pillow is in the test extra")
    rec = record_scenario("biography")
    page, _ = open_page(browser, rec.write_page(tmp_path / "biography.html"))
    for _ in range(4):
        page.keyboard.press("ArrowRight")
    png = page.screenshot(full_page=True)
    page.close()
    shot = image.open(io.BytesIO(png)).convert("RGB")
    colours = shot.getcolors(maxcolors=1 << 20) or []
    assert shot.size[0] >= 1000 and len(colours) > 50  # text, cells in several colours
    # The block colours of the legend are on screen: in use (green) and cached (blue).
    present = {rgb for _, rgb in colours}
    assert (0x74, 0xC4, 0x76) in present and (0x9E, 0xCA, 0xE1) in present
