"""The local, deterministic condenser: keeps the most informative lines of a span."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from .conversation import Message, PartKind
from .salience import line_score

_MAX_UNIT = 400


@dataclass(frozen=True, slots=True)
class Segment:
    speaker: str
    text: str


def segments_of(messages: Sequence[Message]) -> list[Segment]:
    names = {p.tool_id: p.tool_name for m in messages for p in m.parts if p.kind is PartKind.TOOL_CALL and p.tool_id}
    out: list[Segment] = []
    for m in messages:
        for p in m.parts:
            if p.kind is PartKind.TEXT and p.text.strip():
                out.append(Segment(m.role.value, p.text))
            elif p.kind is PartKind.TOOL_CALL:
                out.append(Segment(f"tool call {p.tool_name or ''}".strip(), p.text))
            elif p.kind is PartKind.TOOL_RESULT and p.text.strip():
                out.append(
                    Segment(f"tool result {p.tool_name or names.get(p.tool_id or '', '') or ''}".strip(), p.text)
                )
    return out


def _units(text: str) -> list[str]:
    out = []
    for line in text.splitlines():
        line = line.strip()
        if not line:
            continue
        if len(line) > _MAX_UNIT:
            line = line[: _MAX_UNIT // 2] + " … " + line[-_MAX_UNIT // 2 :]
        out.append(line)
    return out


def condense(segments: Sequence[Segment], budget_tokens: int, count: Callable[[str], int]) -> str:
    units: list[tuple[int, int, str, float]] = []  # (segment, order, text, score)
    seen: set[str] = set()
    for s, seg in enumerate(segments):
        for k, u in enumerate(_units(seg.text)):
            if u in seen:
                continue
            seen.add(u)
            units.append((s, len(units), u, line_score(u) + (0.5 if k == 0 else 0.0)))
    chosen: list[int] = []
    used = 0
    for idx in sorted(range(len(units)), key=lambda i: (-units[i][3], i)):
        cost = count(units[idx][2]) + 2
        if used + cost > budget_tokens:
            continue
        chosen.append(idx)
        used += cost + 3

    def render(sel: list[int]) -> str:
        lines: list[str] = []
        prev_seg = -1
        for i in sorted(sel):
            s, _, text, _ = units[i]
            if s != prev_seg:
                lines.append(f"[{segments[s].speaker}] {text}")
            else:
                lines.append(text)
            prev_seg = s
        return "\n".join(lines)

    text = render(chosen)
    while chosen and count(text) > budget_tokens:
        chosen.remove(min(chosen, key=lambda i: (units[i][3], -i)))
        text = render(chosen)
    return text


def fact_retention(source: str, condensed: str) -> float:
    from .salience import fact_retention as _fr

    return _fr(source, condensed)
