"""Lines by template: repetitive ones collapse to one line with what varied, rare ones stay verbatim."""

from __future__ import annotations

import inspect
import json
import json.decoder
import random
import re

from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from litellm_ctx_hook.analysis.fact_index import CLEARED_INDEX_MAX_CHARS, INDEX_LABEL
from litellm_ctx_hook.analysis.templates import (
    MAX_STANDOUTS,
    MIN_GROUP,
    MIN_LINES,
    classify,
    collapse,
    is_group_line,
    records_as_lines,
    standouts,
    template,
)
from litellm_ctx_hook.conversation import Part, PartKind
from litellm_ctx_hook.planning.edits import STANDOUTS_HEADER, placeholder

NOTE = "2026-11-03T10:00:55.001Z NOTE ticket OPS-4411: retry budget moved to canary pool"


def log_lines(n: int = 110, seed: int = 1) -> list[str]:
    r = random.Random(seed)
    return [
        f"2026-11-03T10:{i // 60:02d}:{i % 60:02d}.{r.randrange(1000):03d}Z INFO worker-{r.randrange(1, 9)} "
        f"batch={i} chunk=0x{r.getrandbits(24):06x} sha={r.getrandbits(48):012x} latency={r.randrange(3, 48)}ms "
        f"status=ok"
        for i in range(n)
    ]


def with_needle(lines: list[str], needle: str, at: int) -> str:
    return "\n".join([*lines[:at], needle, *lines[at:]])


def group_count(line: str) -> int:
    m = re.match(r"×(\d+) like: ", line)
    assert m is not None, line
    return int(m.group(1))


# -- template ---------------------------------------------------------------------------------


def test_template_masks_what_varies() -> None:
    a = template("2026-11-03T10:00:01.123Z INFO worker-3 batch=17 sha=9f8e7d6c5b4a latency=12ms status=ok")
    b = template("2026-11-04 23:59:59,999 INFO worker-12 batch=4410 sha=0a1b2c3d4e5f latency=3ms status=ok")
    assert a.key == b.key
    assert "status=ok" in a.key and "INFO worker-" in a.key
    assert a.slots == ("2026-11-03T10:00:01.123Z", "3", "17", "9f8e7d6c5b4a", "12ms")
    assert template("status=failed").key != template("status=ok").key  # words without digits are the template


def test_template_masks_ids_paths_and_quotes() -> None:
    assert template("open /srv/app/a.py").key == template("open ./lib/other/b.py").key
    assert template("open /srv/app/a.py").key != template("open /srv/app/a.ts").key  # the extension stays
    assert template("read handler.py").key == template("read models.py").key
    assert (
        template('user="mia li" id=123e4567-e89b-12d3-a456-426614174000').key
        == template("user='bo' id=00000000-0000-0000-0000-000000000001").key
    )
    assert template("flight HAT136 seat 12C").key == template("flight XY9 seat 3A").key


def test_test_runner_pass_lines_share_their_marker() -> None:
    assert template("tests/a.py::test_x PASSED   [ 12%]").key == template("tests/b.py::test_y[1] PASSED [100%]").key
    assert template("  ✓ renders header (3 ms)").key == template("✓ opens the menu on click (12 ms)").key
    assert template("--- PASS: TestParse (0.00s)").key == template("--- PASS: TestRoundTrip/utf8 (0.01s)").key
    assert template("tests/a.py::test_x FAILED").key != template("tests/a.py::test_x PASSED").key


# -- collapse ----------------------------------------------------------------------------------


def test_a_note_among_110_log_lines_is_kept_and_the_rest_collapse() -> None:
    text = with_needle(log_lines(), NOTE, 55)
    out = collapse(text).split("\n")
    assert NOTE in out
    groups = [line for line in out if is_group_line(line)]
    assert len(groups) == 1 and group_count(groups[0]) == 110
    assert "worker-{1..8}" in groups[0] and "batch={0..109}" in groups[0] and "status=ok" in groups[0]
    assert groups[0].startswith("×110 like: 2026-11-03T10:0…")
    assert out.index(groups[0]) < out.index(NOTE)  # where the group's first line was


def test_an_unusual_value_is_kept_verbatim() -> None:
    lines = log_lines()
    slow = lines[70].replace("latency=", "latency=9").replace("ms", "000ms")
    text = "\n".join([*lines[:70], slow, *lines[70:]])
    out = collapse(text).split("\n")
    assert slow in out
    assert group_count(next(x for x in out if is_group_line(x))) == 110


def test_a_rare_status_among_many_is_kept() -> None:
    lines = [f"job {i} finished status=ok in {i % 7 + 1}s" for i in range(30)]
    lines[13] = "job 13 finished status=failed in 4s"
    out = collapse("\n".join(lines)).split("\n")
    assert "job 13 finished status=failed in 4s" in out
    assert group_count(out[0]) == 29


def test_pytest_output_keeps_failures_and_the_summary() -> None:
    lines = ["============ test session starts ============"]
    lines += [f"tests/test_m{i // 9}.py::test_{i} PASSED{' ' * 8}[{i:3d}%]" for i in range(60)]
    lines.insert(30, "tests/test_billing.py::test_refund FAILED        [ 49%]")
    lines += ["E   assert 0.1 + 0.2 == 0.3", "============ 1 failed, 60 passed in 3.21s ============"]
    out = collapse("\n".join(lines)).split("\n")
    assert "tests/test_billing.py::test_refund FAILED        [ 49%]" in out
    assert "E   assert 0.1 + 0.2 == 0.3" in out
    assert "============ 1 failed, 60 passed in 3.21s ============" in out
    assert sum(group_count(x) for x in out if is_group_line(x)) == 60
    assert len(out) == 5


def test_jest_and_go_test_output() -> None:
    jest = [f"    ✓ renders widget {i} with props ({i % 9 + 1} ms)" for i in range(40)]
    jest.insert(20, "    ✕ applies discount code SAVE20 (12 ms)")
    out = collapse("\n".join(jest)).split("\n")
    assert out == ["×40 like: ✓ renders widget 0 with props (1 ms)", "    ✕ applies discount code SAVE20 (12 ms)"]
    go = [f"=== RUN   TestCase{i}\n--- PASS: TestCase{i} (0.0{i % 9}s)" for i in range(20)]
    go.insert(10, "=== RUN   TestLimits\n--- FAIL: TestLimits (0.02s)\n    limits_test.go:41: got 7, want 5")
    out = collapse("\n".join([*go, "FAIL", "FAIL\texample.com/limits\t0.31s"])).split("\n")
    assert "--- FAIL: TestLimits (0.02s)" in out and "    limits_test.go:41: got 7, want 5" in out
    assert "FAIL\texample.com/limits\t0.31s" in out


def test_a_listing_keeps_the_odd_file() -> None:
    r = random.Random(3)
    lines = [
        f"-rw-r--r--  1 dev  staff  {r.randrange(1000, 99999):>6d} Nov  3 12:{i % 60:02d} report_{i:04d}.csv"
        for i in range(50)
    ]
    lines.insert(25, "-rwxrwxrwx  1 root root     512 Nov  3 04:12 deploy_hook.sh")
    lines.insert(40, "lrwxrwxrwx  1 dev  staff      21 Nov  3 04:12 current -> /etc/prod/config.yaml")
    out = collapse("\n".join(lines)).split("\n")
    assert "-rwxrwxrwx  1 root root     512 Nov  3 04:12 deploy_hook.sh" in out
    assert "lrwxrwxrwx  1 dev  staff      21 Nov  3 04:12 current -> /etc/prod/config.yaml" in out
    assert group_count(out[0]) == 50


def test_a_largest_share_can_be_asked_of_the_largest_group() -> None:
    # a log of three interleaved kinds: each group holds a third of the lines
    r = random.Random(5)
    kinds = ("GET /api/items/{} 200 {}ms", "cache hit key=item:{} age={}s", "db query rows={} took {}ms")
    lines = [kinds[i % 3].format(r.randrange(10_000), r.randrange(1, 90)) for i in range(90)]
    assert [len(g.lines) for g in classify(lines).groups] == [30, 30, 30]
    assert classify(lines, 0.3).groups  # a third: enough
    assert not classify(lines, 0.5).groups  # none holds half: judged on a sample first, no full pass
    assert classify(log_lines(), 0.5).groups  # one template, all of the lines


def test_json_records_collapse_to_their_shape_and_keep_the_outlier() -> None:
    r = random.Random(5)
    records = [
        {"id": 1000 + i, "account": f"acct_{r.getrandbits(32):08x}", "owner": r.choice(["ann", "bo", "cy", "di", "ed"]),
         "region": r.choice(["eu-west", "us-east"]), "status": "active", "balance": round(r.uniform(10, 500), 2)}
        for i in range(40)
    ]  # fmt: skip
    records.insert(20, {**records[0], "id": 1999, "status": "suspended", "note": "chargeback CB-7731"})
    text = json.dumps(records, indent=1)
    lines = records_as_lines(text)
    assert lines is not None and len(lines) == 41
    out = collapse(text).split("\n")
    assert any("CB-7731" in line and "suspended" in line for line in out)
    assert sum(group_count(x) for x in out if is_group_line(x)) == 40
    assert len(out) < 10


def test_text_that_does_not_repeat_is_left_alone() -> None:
    code = "\n".join(f"def f{i}(x):\n    return x * {i} + helper_{i}(x)" for i in range(5))
    assert collapse(code) == code
    short = "\n".join(log_lines(MIN_LINES - 1))
    assert collapse(short) == short
    prose = "\n".join(f"Line {i} talks about {w}." for i, w in enumerate("abcdefghijklmnopqrstuvwxyz"))
    assert collapse(prose) == prose


def test_collapse_is_deterministic_and_collapses_to_itself() -> None:
    text = with_needle(log_lines(), NOTE, 40)
    once = collapse(text)
    assert once == collapse(text)
    assert collapse(once) == once


def test_blank_lines_between_collapsed_lines_are_squeezed() -> None:
    text = "\n\n".join([*log_lines(30), NOTE])
    out = collapse(text)
    assert "\n\n\n" not in out and NOTE in out


def test_bad_input_passes_through() -> None:
    for text in ["", "\n\n\n", "[", "[1, 2", "{}", "\x00" * 40, "\n".join(["\x00 x 1"] * 30)]:
        collapse(text)  # no exception
    assert collapse("") == ""


# -- invariants --------------------------------------------------------------------------------

_TEMPLATES = (
    "{ts} INFO worker-{a} batch={b} status=ok",
    "{ts} DEBUG cache hit key=k{a}{b} size={b}",
    "GET /api/v1/items/{a} 200 {b}ms",
    "tests/test_{a}.py::test_{b} PASSED [ {a}%]",
)
_RARE_WORDS = st.text(alphabet="abcdefghijklmnopqrstuvwxyz", min_size=3, max_size=8)


@st.composite
def tool_outputs(draw: st.DrawFn) -> list[str]:
    """Lines of a few templates with random values, and rare lines of words no other line has."""
    n = draw(st.integers(min_value=0, max_value=80))
    lines = []
    for i in range(n):
        if draw(st.integers(0, 9)) == 0:
            words = draw(st.lists(_RARE_WORDS, min_size=1, max_size=5))
            lines.append(f"NOTE {i} " + " ".join(words))
        else:
            t = _TEMPLATES[draw(st.integers(0, len(_TEMPLATES) - 1))]
            a, b = draw(st.integers(0, 99)), draw(st.integers(0, 9999))
            lines.append(t.format(ts=f"2026-11-03T10:{a % 60:02d}:{b % 60:02d}Z", a=a, b=b))
    return lines


@hsettings(max_examples=150, deadline=None)
@given(tool_outputs())
def test_collapse_invariants(lines: list[str]) -> None:
    text = "\n".join(lines)
    out = collapse(text).split("\n")
    keys = [template(line).key for line in lines]
    found = classify(lines)
    # Every line of a template with fewer than MIN_GROUP lines is kept verbatim.
    for line, key in zip(lines, keys, strict=True):
        if keys.count(key) < MIN_GROUP:
            assert line in out
    # Order: the verbatim lines are the input's in order, each group where its first line was.
    expected = []
    for i, line in enumerate(lines):
        g = found.group_of[i]
        if g < 0:
            expected.append(line)
        elif found.groups[g].lines[0] == i:
            expected.append(found.groups[g].render)
    assert "\n".join(out) == "\n".join(expected if found.groups else lines)
    # The counts of the groups add up to the lines collapsed.
    collapsed = sum(1 for g in found.group_of if g >= 0)
    assert sum(group_count(x) for x in out if is_group_line(x)) == collapsed
    assert len(out) == len(lines) - collapsed + len(found.groups) or not found.groups
    # Already collapsed text stays as it is.
    assert collapse("\n".join(out)) == "\n".join(out)


# -- what stands in for cleared output ----------------------------------------------------------


def test_standouts_are_the_rare_lines_of_repetitive_output() -> None:
    text = with_needle(log_lines(), NOTE, 55)
    assert standouts(text) == [NOTE]
    assert standouts("just\na few\nlines") == []
    code = "\n".join(f"def f{i}(x):\n    return x * {i}" for i in range(20))
    assert standouts(code) == []  # every line shares a template with others, but nothing stands out
    many = "\n".join([*log_lines(60), *(f"NOTE {w} differs" for w in "abcdefghijklmnop")])
    assert len(standouts(many)) == MAX_STANDOUTS


def test_a_cleared_tool_result_keeps_its_standouts() -> None:
    part = Part(PartKind.TOOL_RESULT, with_needle(log_lines(), NOTE, 55), tool_id="t1", tool_name="bash")
    new = placeholder(part, 5000, {})
    assert new is not None
    assert new.text.split("\n") == ["[output of bash cleared to save context: 5000 tokens]", STANDOUTS_HEADER, NOTE]
    plain = placeholder(Part(PartKind.TOOL_RESULT, "ok\ndone", tool_id="t2", tool_name="bash"), 50, {})
    assert plain is not None and plain.text == "[output of bash cleared to save context: 50 tokens]"


def test_cleared_output_keeps_an_index_of_its_facts_not_of_what_its_common_lines_vary_by() -> None:
    # a file read (code: no template holds it): its identifiers, most frequent first
    source = inspect.getsource(json.decoder)
    code = "\n".join(f"{n + 1:>6}→{line}" for n, line in enumerate(source.split("\n")))
    read = placeholder(Part(PartKind.TOOL_RESULT, code, tool_id="t3", tool_name="Read"), 4000, {})
    assert read is not None
    header, index = read.text.split("\n")
    assert header == "[output of Read cleared to save context: 4000 tokens]"
    assert index.startswith(INDEX_LABEL) and len(index) <= min(CLEARED_INDEX_MAX_CHARS, len(code) // 25)
    assert {"JSONDecodeError", "object_pairs_hook", "py_scanstring"} <= set(index.split())
    assert read == placeholder(Part(PartKind.TOOL_RESULT, code, tool_id="t3", tool_name="Read"), 4000, {})
    # a repetitive log: its rare lines beyond those kept verbatim are indexed, its common lines' values are not
    said = (
        "NOTE ticket OPS-4400 moved to canary",
        "WARN disk /var/lib/pg at 91%",
        "ERROR upstream auth-svc refused token kid=7f3a",
        "NOTE schema migration 0042_orders applied",
        "retrying batch 77 after ECONNRESET",
        "config reloaded from /etc/app/limits.yaml",
        "NOTE feature flag fast_path=off for tenant acme_corp",
        "GC pause 812ms exceeded budget",
        "NOTE ticket OPS-4411 needs sign-off from sre_oncall",
        "cache warmed: 1902 keys in region eu-west-3",
        "deprecated endpoint /v1/orders called by client build-2291",
        "NOTE rollback plan stored at s3://ops/rollback/r58.md",
    )
    notes = [f"2026-11-03T11:00:{i:02d}Z {line}" for i, line in enumerate(said)]
    log = "\n".join([*log_lines(300), *notes])
    cleared = placeholder(Part(PartKind.TOOL_RESULT, log, tool_id="t4", tool_name="bash"), 9000, {})
    assert cleared is not None
    lines = cleared.text.split("\n")
    assert lines[2 : 2 + MAX_STANDOUTS] == notes[:MAX_STANDOUTS]
    assert lines[-1].startswith(INDEX_LABEL)
    assert {"OPS-4411", "sre_oncall", "/v1/orders", "build-2291"} <= set(lines[-1].split())  # beyond the 8
    assert "worker-1" not in lines[-1] and "status=ok" not in lines[-1]
    # no index for output too short to hold one, nor when the caller asks for none
    short = placeholder(Part(PartKind.TOOL_RESULT, "ok /tmp/a_1", tool_id="t5"), 10, {})
    assert short is not None and "\n" not in short.text
    bare = placeholder(Part(PartKind.TOOL_RESULT, code, tool_id="t3", tool_name="Read"), 4000, {}, indexed=False)
    assert bare is not None and bare.text == header
