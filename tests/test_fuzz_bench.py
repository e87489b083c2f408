"""The differential fuzzing benchmark's own parts: a deterministic corpus, the findings rule and
the reading of the plugin's log."""

from __future__ import annotations

import json

from bench.fuzz import Reply, findings_of, log_counts
from bench.fuzz_corpus import DEEP, MUTATIONS, ROUTES, cases


def test_the_corpus_is_deterministic_and_covers_every_route_and_mutation() -> None:
    first = [(c.route, c.mutations, c.encode()) for c in cases(150, seed=3) if "huge_string" not in c.mutations]
    again = [(c.route, c.mutations, c.encode()) for c in cases(150, seed=3) if "huge_string" not in c.mutations]
    assert first == again
    assert {route for route, _, _ in first} == set(ROUTES)
    seen = {m for _, mutations, _ in first for m in mutations}
    assert seen >= set(MUTATIONS) - {"huge_string", "deep_nesting"}
    assert "valid" in seen and "stream" in seen


def test_deep_nesting_is_sent_deeper_than_python_can_encode() -> None:
    deep = next(c for c in cases(3000, seed=1) if "deep_nesting" in c.mutations and b'{"k":[' * DEEP in c.encode())
    assert deep.encode().count(b'{"k":[') >= DEEP


def test_findings() -> None:
    ok = Reply(200, "", ("a",), False)
    assert findings_of_(ok, ok) == []
    assert findings_of_(ok, Reply(500, "other", (), False))  # 5xx where the plain proxy answered
    assert findings_of_(Reply(500, "x", (), False), Reply(500, "x", (), False)) == []
    assert findings_of_(ok, Reply(400, "bad_request", (), False))  # a 4xx of its own
    assert findings_of_(ok, Reply(400, "context_window_exceeded", (), False)) == []  # documented
    assert findings_of_(ok, Reply(200, "", ("b",), False))  # changed without saying so
    assert findings_of_(ok, Reply(200, "", ("b",), True)) == []  # managed, and reported


def findings_of_(plain: Reply, plugin: Reply) -> list[str]:
    return findings_of(next(iter(cases(1))), plain, plugin)


def test_log_counts_read_only_the_plugins_frames_and_lines() -> None:
    line = json.dumps({"logger": "litellm_ctx_hook", "level": "WARNING", "message": "m", "reason": "not_list"})
    error = json.dumps({"logger": "litellm_ctx_hook.engine.engine", "level": "ERROR", "message": "boom"})
    log = "\n".join(
        [
            "Traceback (most recent call last):",
            '  File "/x/litellm/proxy/a.py", line 1, in f',
            "TypeError: not ours",
            line,  # a plugin line right after someone else's trace is not part of it
            "Traceback (most recent call last):",
            '  File "/x/litellm_ctx_hook/engine/engine.py", line 2, in g',
            "KeyError: ours",
            error,
        ]
    )
    assert log_counts(log) == (1, 1, 1)
