"""Tool output as the condenser reads it: JSON as key=value lines, one per object."""

from __future__ import annotations

import json

from support import reservation_doc

from litellm_ctx_hook.analysis.readable import readable


def test_json_is_read_as_key_value_lines_one_per_object() -> None:
    doc = reservation_doc()
    assert readable(json.dumps(doc)) == (
        "reservation_id=4WQ150 insurance=false note=line one\nline two empty={}\n"
        "flights[0]: flight_number=HAT136 price=152.5\n"
        "flights[1]: flight_number=HAT039 price=103\n"
        "tags=a, 1, null"
    )
    assert readable('[{"a": 1}, [2, 3]]') == "#0: a=1\n#1=2, 3"
    assert readable("[1, 2.5, true]") == "1, 2.5, true"
    deep = "[" * 5_000 + "]" * 5_000
    for text in ("not json {", '{"a": 1', "42", '"x"', "", "  [1, 2", deep):
        assert readable(text) == text
    assert readable('{"a":' * 900 + "1" + "}" * 900).endswith(".a: a=1")
