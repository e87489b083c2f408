"""Tool output as the condenser reads it (pure): a JSON document as ``key=value`` lines, one per
object, anything else as it is. JSON's quotes, braces and commas are about a quarter of its tokens
and carry no facts; its field names are schema, reported so that they are not taken for facts.
"""

from __future__ import annotations

import json

__all__ = ["readable"]

MAX_JSON_CHARS = 1_000_000  # larger JSON is taken line by line as text


def _scalar(value: object) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value)  # numbers, true/false/null as JSON writes them


def _flatten(value: object, path: str, out: list[str], fields: set[str]) -> None:
    """One line per JSON object or list: its scalar members as ``key=value``, nested ones after it.
    The objects' field names go into ``fields``."""
    if isinstance(value, dict):
        items, nested = [], []
        for k, v in value.items():
            fields.add(str(k))
            if isinstance(v, dict | list) and v:
                nested.append((f"{path}.{k}" if path else str(k), v))
            else:
                items.append(f"{k}={_scalar(v) if not isinstance(v, dict | list) else json.dumps(v)}")
        if items:
            out.append(f"{path}: {' '.join(items)}" if path else " ".join(items))
        for sub, v in nested:
            _flatten(v, sub, out, fields)
    elif isinstance(value, list):
        if all(not isinstance(v, dict | list) for v in value):
            scalars = ", ".join(_scalar(v) for v in value)
            out.append(f"{path}={scalars}" if path else scalars)
        else:
            for i, v in enumerate(value):  # "flights[0]", or "#0" at the top (a line never starts with "[")
                _flatten(v, f"{path}[{i}]" if path else f"#{i}", out, fields)
    else:
        out.append(f"{path}={_scalar(value)}" if path else _scalar(value))


def readable(text: str, fields: set[str] | None = None) -> str:
    """The text units are cut from: a JSON document (a typical tool result) as ``key=value`` lines,
    one per object, anything else as it is. JSON's quotes, braces and commas are about a quarter of
    its tokens and carry no facts. The JSON's field names are added to ``fields``."""
    stripped = text.strip()
    if not stripped or stripped[0] not in "{[" or len(stripped) > MAX_JSON_CHARS:
        return text
    out: list[str] = []
    try:
        value = json.loads(stripped)
        if not isinstance(value, dict | list):
            return text
        _flatten(value, "", out, set() if fields is None else fields)
    except (ValueError, RecursionError):  # not JSON, or nested too deep to walk: read it as text
        return text
    return "\n".join(out)
