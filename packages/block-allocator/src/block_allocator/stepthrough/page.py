"""Write a recording as one self-contained HTML page (no network, scripts, styles or fonts).

The template (``page.html`` beside this module) holds the styles and the player; the
recording goes in as JSON inside a ``<script type="application/json">`` element, escaped so
no request id or note can close it early.
"""

from __future__ import annotations

import html
import json
import os
import tempfile
from importlib.resources import files
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .recorder import Recorder

__all__ = ["render_page", "write_page"]


def render_page(recorder: Recorder) -> str:
    """The page's HTML text."""
    template = files(__package__).joinpath("page.html").read_text(encoding="utf-8")
    data = json.dumps(recorder.to_json(), separators=(",", ":"))
    # Inside <script>, "</script" or "<!--" in a request id or a note would end or change
    # the element; JSON reads "\u003c" as "<", so no "<" is left in the text at all.
    data = data.replace("<", "\\u003c")
    return template.replace("__TITLE__", html.escape(recorder.title)).replace("__DATA__", data)


def write_page(recorder: Recorder, path: str | os.PathLike[str]) -> Path:
    """Write the page to ``path`` atomically (a failed write leaves no partial file)."""
    target = Path(path)
    if target.is_dir():
        raise IsADirectoryError(f"path must be a file name, got the directory {str(target)!r}")
    if not target.parent.is_dir():
        raise FileNotFoundError(f"path's folder {str(target.parent)!r} does not exist")
    text = render_page(recorder)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target
