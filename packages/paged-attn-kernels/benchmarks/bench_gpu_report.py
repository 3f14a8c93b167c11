"""Render a ``bench_gpu.py`` JSON result as the per-dtype tables of docs/GPU.md.

    python benchmarks/bench_gpu_report.py full.json > tables.md

No GPU needed: it only formats numbers (cells: median µs / % of copy, splits in brackets).
"ours" is the launch planned from the batch's lengths (``plan_decode``), "no plan" the
launch from shapes alone; "unsplit" and "alt split" force ``num_splits`` on the latter.
"""

from __future__ import annotations

import argparse
import json
from typing import Any


def cell(m: dict[str, Any] | None, splits: bool = False) -> str:
    if m is None:
        return "–"
    if "error" in m:
        return "fail"
    s = f"{m['us']:.1f} / {m['pct_copy']:.0f}%"
    if splits and "splits" in m:
        s += f" ({m['splits']})"
    if m.get("padded"):
        s += " (padded)"
    return s


def shape_name(label: str) -> str:
    if label.startswith("B") and "xctx" in label:
        b, c = label[1:].split("xctx")
        return f"B={b} × {c}"
    return label


def tables(results: list[dict[str, Any]]) -> str:
    out: list[str] = []
    groups: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for r in results:
        groups.setdefault((r["dtype"], r["kv_heads"]), []).append(r)
    for (dtype, kv), rows in groups.items():
        fp8 = any("ours_fp8" in r["methods"] for r in rows)
        head = ["shape", "KV GB", "ours (splits)", "no plan (splits)", "unsplit", "alt split"]
        head += ["ours, write-flush"]
        head += ["ours fp8 (x bf16)"] if fp8 else []
        head += ["SDPA dense", "gather+SDPA", "Flex paged", "rel. err ours / SDPA"]
        out += [f"**{dtype}, {rows[0]['q_heads']} query heads / {kv} KV heads**", ""]
        out += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for r in rows:
            m = r["methods"]
            alt = m.get("ours_alt")
            cells = [
                shape_name(r["label"]),
                f"{r['kv_gb']:.3f}",
                cell(m["ours"], True),
                cell(m.get("ours_grid"), True),
                cell(m.get("ours_s1")),
                cell(alt, True) if alt else "–",
                cell(m.get("ours_writeflush")),
            ]
            if fp8:
                f8 = m.get("ours_fp8")
                cells.append(
                    f"{f8['us']:.1f} / {f8['pct_copy']:.0f}% ({f8['speedup_vs_bf16']:.2f}x)"
                    if f8
                    else "–"
                )
            e_sdpa = m.get("sdpa_dense", {}).get("err", float("nan"))
            cells += [
                cell(m.get("sdpa_dense")),
                cell(m.get("gather_sdpa")),
                cell(m.get("flex_paged")),
                f"{m['ours']['err']:.1e} / {e_sdpa:.1e}",
            ]
            out.append("| " + " | ".join(cells) + " |")
        out.append("")
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("json_path")
    args = ap.parse_args()
    with open(args.json_path) as f:
        data = json.load(f)
    print(tables(data["results"]))


if __name__ == "__main__":
    main()
