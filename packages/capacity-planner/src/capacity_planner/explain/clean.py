"""Turn one raw line of a pasted vLLM log into clean text plus the process that wrote it.

Real logs arrive wrapped in noise: ANSI colour codes (also with the ESC byte lost in a
copy-paste, as ``[1;36m``), docker-compose and kubectl prefixes, vLLM's own
``INFO 07-24 12:34:56 [file.py:123]`` header, and the multiprocess prefix vLLM puts in
front of every worker line: ``(VllmWorker rank=1 pid=123)``, ``(VllmWorkerProcess
pid=521)``, ``(EngineCore_DP0 pid=9)``, ``(Worker_TP1 pid=7)``, ``(RayWorkerWrapper
pid=5, ip=10.0.0.2)``, and SGLang's ``[2026-01-31 13:50:39 TP2]``. The patterns in
`patterns` search anywhere in a line, so only the colour codes must go; the prefix is
kept apart because it tells ranks apart.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["CleanLine", "clean_line", "split_top_level"]

# ESC-based CSI sequences, and the bare "[1;36m" residue of a copy-paste that lost ESC.
_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b[@-_]|\[[0-9]{1,3}(?:;[0-9]{1,3})*m")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
_PROCESS = re.compile(
    r"\((?P<tag>[A-Za-z][\w-]*(?:\s+rank=\d+)?)?\s*pid=(?P<pid>\d+)(?:,\s*ip=[^)]*)?\)"
)
_RANK = re.compile(r"(?:rank=|_TP|\[rank)(\d+)")
# SGLang's scheduler prefix: "[2026-01-31 13:50:39 TP2]", "[... DP0 TP1]", "[... PP1 TP0]".
_SGLANG = re.compile(r"\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(?P<tags>(?: (?:DP|PP|TP|EP|CP)\d+)+)\]")
_SGLANG_TP = re.compile(r"\bTP(\d+)")
_LEVEL = re.compile(r"\b(DEBUG|INFO|WARNING|WARN|ERROR|CRITICAL)\b")


@dataclass(frozen=True, slots=True)
class CleanLine:
    """One log line without colour codes, and who wrote it.

    `source` is the multiprocess prefix without parentheses ("VllmWorker rank=1
    pid=123"), or None for the main process; `rank` the tensor-parallel rank when the
    prefix names one.
    """

    line_no: int
    text: str
    source: str | None
    rank: int | None
    level: str | None


def clean_line(line_no: int, raw: str) -> CleanLine:
    """Strip colour and control codes and pull out the process prefix of one line."""
    text = _CONTROL.sub("", _ANSI.sub("", raw)).rstrip()
    source: str | None = None
    rank: int | None = None
    match = _PROCESS.search(text[:200])
    if match is not None:
        tag = (match.group("tag") or "").strip()
        source = f"{tag} pid={match.group('pid')}".strip()
        rank_match = _RANK.search(tag)
        if rank_match is not None:
            rank = int(rank_match.group(1))
    else:
        sglang = _SGLANG.search(text[:200])
        if sglang is not None:
            source = sglang.group("tags").strip()
            tp = _SGLANG_TP.search(source)
            rank = None if tp is None else int(tp.group(1))
    level_match = _LEVEL.search(text[:200])
    level = None if level_match is None else level_match.group(1)
    return CleanLine(line_no=line_no, text=text, source=source, rank=rank, level=level)


_OPEN = {"(": ")", "[": "]", "{": "}"}


def split_top_level(text: str, sep: str = ",") -> list[str]:
    """Split at `sep` outside brackets and quotes: ``a=1, b=f(x, y), c='p,q'``.

    Unbalanced input (a truncated line) never raises: whatever is open at the end
    simply stays in the last piece.
    """
    pieces: list[str] = []
    stack: list[str] = []
    quote: str | None = None
    start = 0
    for i, ch in enumerate(text):
        if quote is not None:
            if ch == quote:
                quote = None
        elif ch in "'\"":
            quote = ch
        elif ch in _OPEN:
            stack.append(_OPEN[ch])
        elif stack and ch == stack[-1]:
            stack.pop()
        elif ch == sep and not stack:
            pieces.append(text[start:i])
            start = i + 1
    pieces.append(text[start:])
    return [p.strip() for p in pieces if p.strip()]
