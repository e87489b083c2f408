"""The extractive condenser: segments of a span, budget, order, determinism, facts kept."""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable, Sequence
from itertools import pairwise

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from support import needs_evaldata, reservation_doc

from bench import evaldata
from litellm_ctx_hook.adapters import adapter_for
from litellm_ctx_hook.analysis.salience import key_tokens
from litellm_ctx_hook.analysis.templates import is_group_line
from litellm_ctx_hook.analysis.tokenizers import bpe_counter
from litellm_ctx_hook.condensing.local.cutting import cut_units
from litellm_ctx_hook.condensing.local.extractive import (
    GAP,
    INDEX_LABEL,
    INDEX_SHARE,
    INDEX_SHARE_MAX,
    SUMMARY_SPEAKER,
    Segment,
    condense,
    condense_summary,
    fact_retention,
    index_share,
    is_chat,
    missing_facts_index,
    readable,
    segments_of,
)
from litellm_ctx_hook.condensing.local.marks import COMMON_FACTOR, RARE_BONUS, template_marks
from litellm_ctx_hook.conversation import ImageRef, Message, Part, PartKind, Role
from litellm_ctx_hook.planning.edits import STANDOUTS_HEADER


def simple(s: str) -> int:
    return len(s) // 4 + 1


def tokens_of(segments: Sequence[Segment], count: Callable[[str], int] = simple) -> int:
    return count("\n".join(f"[{s.speaker}] {s.text}" for s in segments))


def source(segments: Sequence[Segment]) -> str:
    return "\n".join(f"[{s.speaker}] {s.text}" for s in segments)


# -- what the output is made of -------------------------------------------------------------


def check_output(segments: Sequence[Segment], out: str) -> None:
    """Every line is a label + unit, a unit of the same segment, a group's line (``×N like: …``) or
    the gap marker; in input order."""
    groups: list[tuple[str, list[str]]] = []  # (speaker, units) for each label
    lines = out.split("\n") if out else []
    if lines and lines[-1].startswith(INDEX_LABEL + " "):  # the index: facts quoted verbatim from the source
        source = "\n".join(readable(s.text) for s in segments)
        assert all(key in source for key in lines.pop()[len(INDEX_LABEL) + 1 :].split(" "))
    for line in lines:
        if line == GAP:
            continue
        if line.startswith("[") and "] " in line:  # a new segment: "[speaker] unit"
            speaker, unit = line[1:].split("] ", 1)
            groups.append((speaker, [] if is_group_line(unit) else [unit]))
        else:  # the same segment, further on
            assert groups, line
            if not is_group_line(line):
                groups[-1][1].append(line)
    seg = -1
    for speaker, units in groups:  # the earliest later segment holding all units in order
        for s in range(seg + 1, len(segments)):
            if segments[s].speaker == speaker and _in_order(readable(segments[s].text), units):
                seg = s
                break
        else:
            raise AssertionError(f"{units!r} are not units of a later {speaker!r} segment")


def _in_order(text: str, units: list[str]) -> bool:
    """Whether ``units`` are found in ``text`` in order (whitespace runs compared as one space: the
    sentences of one line are rendered on one line, joined by a space)."""
    text = " ".join(text.split())
    pos = 0
    for unit in units:
        pos = _find(text, " ".join(unit.split()), pos)
        if pos < 0:
            return False
    return True


def _find(text: str, unit: str, start: int) -> int:
    """End of ``unit`` in ``text`` at or after ``start`` (a middle-cut piece: head, then tail)."""
    for part in unit.split(f" {GAP} "):
        at = text.find(part, start)
        if at < 0:
            return -1
        start = at + len(part)
    return start


# -- segments_of ----------------------------------------------------------------------------


def test_segments_of_keeps_text_calls_and_results_and_skips_thinking() -> None:
    messages = [
        Message(Role.SYSTEM, (Part(PartKind.TEXT, "You are an airline agent."),)),
        Message(
            Role.USER,
            (
                Part(PartKind.TEXT, "Change reservation 4WQ150, here are my boarding passes"),
                Part(PartKind.IMAGE, image=ImageRef(url="https://example.com/a.png")),
                Part(PartKind.IMAGE, image=ImageRef(url="https://example.com/b.png")),
            ),
        ),
        Message(
            Role.ASSISTANT,
            (
                Part(PartKind.THINKING, "secret reasoning"),
                Part(PartKind.TEXT, "   "),
                Part(
                    PartKind.TOOL_CALL,
                    'get_reservation_details({"reservation_id": "4WQ150"})',
                    tool_id="call_1",
                    tool_name="get_reservation_details",
                ),
                Part(PartKind.TOOL_CALL, "Bash\ncommand: ls src", tool_id="toolu_2", tool_name="Bash"),
                Part(PartKind.OPAQUE, '{"type": "web_search_call"}'),
            ),
        ),
        Message(Role.TOOL, (Part(PartKind.TOOL_RESULT, '{"reservation_id": "4WQ150"}', tool_id="call_1"),)),
        Message(Role.USER, (Part(PartKind.TOOL_RESULT, "a.py\nb.py", tool_id="toolu_2"),)),
        Message(Role.USER, (Part(PartKind.TOOL_RESULT, "", tool_id="toolu_9"),)),
    ]
    assert segments_of(messages) == [
        Segment("system", "You are an airline agent."),
        Segment("user", "Change reservation 4WQ150, here are my boarding passes"),
        Segment("user", "[image]"),
        Segment("tool call get_reservation_details", '{"reservation_id": "4WQ150"}'),
        Segment("tool call Bash", "command: ls src"),
        Segment("tool result get_reservation_details", '{"reservation_id": "4WQ150"}'),
        Segment("tool result Bash", "a.py\nb.py"),
    ]


def test_segments_of_a_parsed_openai_request() -> None:
    body = {
        "model": "gpt-4o",
        "messages": [
            {"role": "user", "content": "Cancel 4WQ150"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_a",
                        "type": "function",
                        "function": {"name": "cancel_reservation", "arguments": '{"reservation_id": "4WQ150"}'},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "call_a", "content": '{"status": "cancelled"}'},
        ],
    }
    messages = adapter_for("openai").parse(body).messages
    assert segments_of(messages) == [
        Segment("user", "Cancel 4WQ150"),
        Segment("tool call cancel_reservation", '{"reservation_id": "4WQ150"}'),
        Segment("tool result cancel_reservation", '{"status": "cancelled"}'),
    ]


# -- condense: format and guarantees --------------------------------------------------------


def test_everything_fits_everything_is_kept() -> None:
    segments = [
        Segment("user", "Hi!\n\nI want to fly to Paris."),
        Segment("assistant", "Sure.  \nWhen?"),
        Segment("user", "May 20"),
    ]
    out = condense(segments, 1_000, simple)
    assert out == "[user] Hi!\nI want to fly to Paris.\n[assistant] Sure.\nWhen?\n[user] May 20"


def test_budget_too_small_gives_empty_text() -> None:
    segments = [Segment("user", "I need to change reservation 4WQ150 to a later flight please")]
    assert condense(segments, 0, simple) == ""
    assert condense(segments, -5, simple) == ""
    assert condense(segments, 3, simple) == ""
    assert condense([], 100, simple) == ""
    assert condense([Segment("user", "  \n ")], 100, simple) == ""


def test_drops_filler_marks_gaps_and_keeps_order() -> None:
    filler = "\n".join(f"just chatting about nothing in particular, round {chr(97 + i)}" for i in range(20))
    segments = [
        Segment("user", "Please cancel reservation 4WQ150 for user mia_li_3668."),
        Segment("assistant", filler),
        Segment("tool result cancel_reservation", '{"reservation_id": "4WQ150", "status": "cancelled"}'),
        Segment("assistant", filler + "\nThe refund of $1,234.50 goes to credit_card_4421486."),
    ]
    budget = tokens_of(segments) // 3
    out = condense(segments, budget, simple)
    assert simple(out) <= budget
    check_output(segments, out)
    for fact in ("4WQ150", "mia_li_3668", "cancelled", "$1,234.50", "credit_card_4421486"):
        assert fact in out
    assert GAP in out.split("\n")
    assert out.index("mia_li_3668") < out.index("cancelled") < out.index("$1,234.50")


def test_json_tool_output_is_condensed_as_key_value_lines() -> None:
    doc = reservation_doc()
    segments = [Segment("tool result get_reservation_details", json.dumps(doc, indent=2))]
    out = condense(segments, 1_000, simple)
    assert out.startswith("[tool result get_reservation_details] reservation_id=4WQ150 ")
    assert "HAT039" in out and '"' not in out
    check_output(segments, out)


def test_exact_duplicates_are_dropped() -> None:
    segments = [
        Segment("tool result Bash", "PASSED tests/test_a.py::test_one\nPASSED tests/test_a.py::test_one"),
        Segment("tool result Bash", "PASSED tests/test_a.py::test_one\nFAILED tests/test_b.py::test_two"),
    ]
    out = condense(segments, 1_000, simple)
    assert out.count("PASSED tests/test_a.py::test_one") == 1
    assert "FAILED tests/test_b.py::test_two" in out


def test_long_lines_become_sentences_and_long_units_are_cut_in_the_middle() -> None:
    prose = " ".join(f"Sentence number {i} talks about nothing much at all." for i in range(12))
    prose += " The booking HAT136 was confirmed."
    blob = "x" * 5_000
    segments = [Segment("assistant", prose), Segment("tool result Read", blob)]
    out = condense(segments, 1_000_000, simple)
    assert out.split("\n")[0] == f"[assistant] {prose}"  # its sentences, on one line again
    small_budget = condense(segments, 60, simple)
    assert "The booking HAT136 was confirmed." in small_budget and GAP in small_budget.split("\n")
    check_output(segments, small_budget)
    cut = out.split("\n")[-1]
    assert cut.startswith("[tool result Read] xxx") and f"x {GAP} x" in cut and len(cut) < 450
    small = condense(segments, 40, simple)
    assert "The booking HAT136 was confirmed." in small
    check_output(segments, small)


def test_deterministic() -> None:
    segments = [Segment("user" if i % 2 else "assistant", f"line {i} about HAT{i:03d}\nfiller") for i in range(50)]
    outs = {condense(segments, 120, simple) for _ in range(3)}
    assert len(outs) == 1


# -- realistic spans at ~30% ----------------------------------------------------------------


def _airline_segments() -> list[Segment]:
    flights = [
        {
            "flight_number": f"HAT{100 + i}",
            "origin": "JFK",
            "destination": "SEA",
            "scheduled_departure_time_est": f"{6 + i % 12:02d}:00:00",
            "status": "available",
            "available_seats": {"basic_economy": 9, "economy": 12, "business": 3},
            "prices": {"basic_economy": 51 + i, "economy": 121 + i, "business": 239 + i},
        }
        for i in range(12)
    ]
    reservation = {
        "reservation_id": "4WQ150",
        "user_id": "mia_li_3668",
        "origin": "JFK",
        "destination": "SEA",
        "flight_type": "one_way",
        "cabin": "economy",
        "flights": [{"flight_number": "HAT136", "date": "2024-05-20", "price": 1234.5}],
        "passengers": [{"first_name": "Mia", "last_name": "Li", "dob": "1990-04-05"}],
        "payment_history": [{"payment_id": "credit_card_4421486", "amount": 1234.5}],
    }
    chat = "That sounds good, thank you so much for walking me through all of these options today."
    return [
        Segment("user", "Hi! I'd like to change my reservation 4WQ150. My user id is mia_li_3668."),
        Segment("tool call get_reservation_details", '{"reservation_id": "4WQ150"}'),
        Segment("tool result get_reservation_details", json.dumps(reservation)),
        Segment("assistant", "Your reservation 4WQ150 is on flight HAT136 on 2024-05-20. " + chat),
        Segment("user", chat + " Which later flights are there?"),
        Segment("tool call search_direct_flight", '{"origin": "JFK", "destination": "SEA", "date": "2024-05-20"}'),
        Segment("tool result search_direct_flight", json.dumps(flights)),
        Segment("assistant", "\n".join([chat] * 3 + ["There are 12 flights; the latest is HAT111 at 17:00."])),
        Segment("user", chat + " Please book HAT111 and refund the difference to credit_card_4421486."),
        Segment("assistant", "Done: booked HAT111; a refund of $1,234.50 goes to credit_card_4421486. " + chat),
    ]


def _stack_trace_segments() -> list[Segment]:
    log = "\n".join(
        f"2024-05-20 10:{i // 60:02d}:{i % 60:02d} INFO worker heartbeat ok, queue depth nominal" for i in range(80)
    )
    trace = (
        "Traceback (most recent call last):\n"
        '  File "/app/src/payments/refund.py", line 42, in process_refund\n'
        "    amount = compute_amount(order.total_cents)\n"
        '  File "/app/src/payments/amounts.py", line 7, in compute_amount\n'
        '    raise ValueError(f"negative amount {cents}")\n'
        "ValueError: negative amount -1250"
    )
    return [
        Segment("user", "The refund job keeps crashing, can you find out why?"),
        Segment("tool call Bash", "command: tail -n 200 /var/log/refunds.log"),
        Segment("tool result Bash", log + "\n" + trace + "\n" + log),
        Segment("assistant", "The crash comes from compute_amount in /app/src/payments/amounts.py."),
    ]


def _file_listing_segments() -> list[Segment]:
    listing = "\n".join(f"./src/module_{i // 10}/file_{i}.py" for i in range(150))
    return [
        Segment("user", "Fix the rounding bug in src/billing/invoice.py, tests fail."),
        Segment("tool call Bash", "command: find . -name '*.py'"),
        Segment("tool result Bash", listing + "\n./src/billing/invoice.py\n./tests/test_invoice.py"),
        Segment("tool call Bash", "command: pytest tests/test_invoice.py"),
        Segment(
            "tool result Bash",
            "\n".join(["." * 60] * 5)
            + "\nFAILED tests/test_invoice.py::test_rounding - AssertionError: 10.01 != 10.0\n"
            + "1 failed, 299 passed in 3.21s",
        ),
    ]


@pytest.mark.parametrize(
    ("build", "facts", "retention"),
    [
        (_airline_segments, ["4WQ150", "mia_li_3668", "HAT136", "HAT111", "2024-05-20", "credit_card_4421486"], 0.5),
        (_stack_trace_segments, ["ValueError", "/app/src/payments/refund.py", "process_refund", "-1250", "42"], 0.5),
        # 150 distinct paths cannot all fit in 30%: the ones that matter must
        (_file_listing_segments, ["src/billing/invoice.py", "test_rounding", "AssertionError", "10.01"], 0.25),
    ],
    ids=["airline", "stack-trace", "file-listing"],
)
def test_important_tokens_survive_at_30_percent(
    build: Callable[[], list[Segment]], facts: list[str], retention: float
) -> None:
    segments = build()
    budget = int(tokens_of(segments) * 0.3)
    out = condense(segments, budget, simple)
    assert 0 < simple(out) <= budget
    check_output(segments, out)
    for fact in facts:
        assert fact in out, fact
    assert fact_retention(source(segments), out) > retention


def test_real_tokenizer() -> None:
    count = bpe_counter("o200k_base")
    if count is None:
        pytest.skip("o200k_base cannot be loaded here")
    segments = _airline_segments()
    total = tokens_of(segments, count)
    for share in (0.1, 0.25, 0.5):
        budget = int(total * share)
        out = condense(segments, budget, count)
        assert 0 < count(out) <= budget
        check_output(segments, out)
    assert "4WQ150" in condense(segments, int(total * 0.25), count)
    assert condense(segments, total + 10, count) == condense(segments, 10**9, count)


# -- properties -----------------------------------------------------------------------------

WORDS = [
    "the", "and", "flight", "HAT136", "4WQ150", "mia_li_3668", "refund", "error:", "Paris", "?", "1,234.50",
    "src/a/b.py", "decided", "ok", "-----", "{", "}", '"id":', "über", "🙂", "x" * 300, ".", ",",
]  # fmt: skip
line = st.one_of(
    st.lists(st.sampled_from(WORDS), max_size=40).map(" ".join),
    st.text(st.characters(blacklist_characters="[…", blacklist_categories=("Cs",)), max_size=80),
)
segment = st.builds(
    Segment,
    st.sampled_from(["user", "assistant", "tool result Bash", "tool call Bash", "system"]),
    st.lists(line, max_size=8).map("\n".join),
)
counters: dict[str, Callable[[str], int]] = {
    "chars/4": simple,
    "words": lambda s: len(s.split()) + s.count("\n"),
    "super-additive": lambda s: len(s) // 3 + len(s) ** 2 // 20_000,
}


@given(st.lists(segment, max_size=12), st.integers(-2, 600), st.sampled_from(sorted(counters)))
@hsettings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_guarantees(segments: list[Segment], budget: int, counter: str) -> None:
    count = counters[counter]
    out = condense(segments, budget, count)
    assert out == "" or count(out) <= budget
    assert condense(segments, budget, count) == out
    check_output(segments, out)
    everything = condense(segments, 10**9, count)
    assert GAP not in everything.split("\n")
    if count(everything) <= budget:
        assert out == everything


def test_counts_each_unit_once() -> None:
    segments = _airline_segments() * 20
    counted = 0

    def count(s: str) -> int:
        nonlocal counted
        counted += len(s)
        return simple(s)

    out = condense(segments, tokens_of(segments) // 4, count)
    assert out
    # the units once, the whole input once (does it all fit?), a few renderings of the output
    assert counted < 2 * len(source(segments)) + 6 * len(out)


def test_two_megabytes_in_seconds() -> None:
    segments: list[Segment] = []
    for i in range(300):  # distinct text, so that nothing is a duplicate
        for seg in _airline_segments() + _stack_trace_segments() + _file_listing_segments():
            segments.append(Segment(seg.speaker, seg.text.replace("4", str(i % 10)).replace("1", str(i))))
    assert len(source(segments)) > 2_000_000
    budget = tokens_of(segments) // 4
    started = time.perf_counter()
    out = condense(segments, budget, simple)
    assert time.perf_counter() - started < 30.0  # a couple of seconds here; generous for slow CI
    assert 0 < simple(out) <= budget


# -- real conversations ---------------------------------------------------------------------


@needs_evaldata
@pytest.mark.parametrize("pick", ["tau", "swegym"])
def test_real_conversation_at_25_percent(pick: str) -> None:
    sample = next(evaldata.tau_runs()) if pick == "tau" else next(evaldata.swegym_runs())
    conversation = adapter_for(sample.format).parse(sample.body)
    segments = segments_of([m for m in conversation.messages if m.role is not Role.SYSTEM])
    count = bpe_counter("o200k_base") or simple
    budget = tokens_of(segments, count) // 4
    out = condense(segments, budget, count)
    assert 0 < count(out) <= budget
    assert condense(segments, budget, count) == out
    check_output(segments, out)
    assert fact_retention(source(segments), out) > 0.4


def test_the_index_names_the_facts_the_lines_left_out() -> None:
    tickets = "\n".join(f"ticket TCK-{1000 + i} assigned to user_{i} on 2024-06-{i % 28 + 1:02d}" for i in range(60))
    segments = [
        Segment("user", "List the open tickets, please."),
        Segment("tool result search_tickets", tickets),
        Segment("assistant", "There are 60 open tickets."),
    ]
    budget = tokens_of(segments) // 4
    out = condense(segments, budget, simple)
    assert simple(out) <= budget
    check_output(segments, out)
    index = out.split("\n")[-1]
    assert index.startswith(INDEX_LABEL + " ")
    lines = out.split("\n")[:-1]
    listed = index[len(INDEX_LABEL) + 1 :].split(" ")
    assert not set(listed) & key_tokens("\n".join(lines))  # only what the lines do not quote
    # many more ids survive than the lines alone could hold, and the same input gives the same text
    assert fact_retention(tickets, out) > 2 * fact_retention(tickets, "\n".join(lines))
    assert condense(segments, budget, simple) == out


def test_the_index_grows_as_the_budget_shrinks() -> None:
    shares = [index_share(c / 100) for c in range(0, 101)]
    assert shares[0] == shares[10] == INDEX_SHARE_MAX and shares[25] == shares[100] == INDEX_SHARE
    assert all(a >= b for a, b in pairwise(shares))  # never more index for more budget


# -- chat -----------------------------------------------------------------------------------

GREETINGS = ["Hey Nate! Long time no see!", "Good morning Nate!", "Hey Emma, how are you doing today?", "Haha yes Emma"]
CHAT_FACTS = [
    "I went skiing in Aspen with my cousins last weekend",
    "My favourite dish is pho from the place near Union Square",
    "I'm starting the new job at the bakery on Monday",
    "We adopted a grey cat called Pickles",
]


def _chat() -> list[Segment]:
    segments: list[Segment] = []
    for day in range(12):
        segments.append(Segment("user", f"[Session {day + 1} — 2024-01-{day + 1:02d} 20:00]\n{GREETINGS[day % 4]}"))
        segments.append(Segment("assistant", GREETINGS[(day + 1) % 4]))
        if day % 3 == 1:
            segments.append(Segment("assistant" if day % 2 else "user", CHAT_FACTS[day // 3]))
        segments.append(Segment("user", "Haha that's so true Nate"))
    return segments


def test_is_chat_means_no_tool_traffic() -> None:
    assert is_chat(_chat())
    assert not is_chat([*_chat(), Segment("tool result Bash", "ok")])
    assert not is_chat([Segment("tool call search", "q=1")])


def test_a_chat_keeps_the_facts_over_the_greetings_said_everywhere() -> None:
    segments = _chat()
    out = condense(segments, tokens_of(segments) // 3, simple)
    check_output(segments, out)
    kept_facts = sum(fact in out for fact in CHAT_FACTS)
    kept_greetings = sum(line.endswith(tuple(GREETINGS)) for line in out.split("\n"))
    assert kept_facts == len(CHAT_FACTS) and kept_greetings < len(CHAT_FACTS)
    assert "[Session" in out  # dated headers are worth keeping


def test_a_long_chat_line_keeps_its_sentences_on_one_line() -> None:
    story = " ".join(
        f"On day {d} we drove to Lisbon. The hotel lost booking {d}! So we slept at Ana's flat, number {d}."
        for d in range(3)
    )
    segments = [Segment("user", story), *_chat()]
    out = condense(segments, 10_000, simple)
    assert out.split("\n")[0] == f"[user] {story}"


chat_line = st.one_of(
    st.lists(
        st.sampled_from(
            ["Hey", "Nate!", "I", "love", "pho", "Aspen", "2024-01-05", "20:00", "skiing", "my", "cat", "?"]
        ),
        max_size=30,
    ).map(" ".join),
    st.sampled_from(GREETINGS + CHAT_FACTS),
    st.text(st.characters(blacklist_characters="[…", blacklist_categories=("Cs",)), max_size=60),
)
chat_segment = st.builds(
    Segment,
    st.sampled_from(["user", "assistant"]),
    st.tuples(st.booleans(), st.lists(chat_line, min_size=1, max_size=6)).map(
        lambda t: "\n".join((["[Session 2 — 2024-01-05 20:00]"] if t[0] else []) + t[1])
    ),
)


@given(st.lists(chat_segment, max_size=16), st.integers(0, 400), st.sampled_from(sorted(counters)))
@hsettings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_chat_guarantees(segments: list[Segment], budget: int, counter: str) -> None:
    """In a chat too: within the budget, the same output every time, every line quoted verbatim from
    the source (its sentences joined as they were), in the original order."""
    count = counters[counter]
    out = condense(segments, budget, count)
    assert out == "" or count(out) <= budget
    assert condense(list(segments), budget, count) == out
    check_output(segments, out)


# -- the index of missing facts, for mending a summary ----------------------------------------


def test_missing_facts_index_lists_what_the_summary_lacks_most_frequent_first() -> None:
    src = (
        "[user] change HAT136 to HAT137 for mia_li_3668 on 2024-05-20\n"
        "[tool result] HAT136 cancelled, refund to credit_card_4421486\n"
        "[assistant] HAT136 is cancelled; HAT137 is booked"
    )
    out = missing_facts_index(src, "Mia moved to HAT137.", 100, simple)
    listed = out[len(INDEX_LABEL) + 1 :].split(" ")
    assert out.startswith(INDEX_LABEL + " ") and listed[0] == "HAT136"  # in three lines
    assert set(listed) == {"HAT136", "mia_li_3668", "2024-05-20", "credit_card_4421486"}
    assert missing_facts_index(src, "Mia moved to HAT137.", 100, simple) == out


def test_missing_facts_index_fits_its_room_and_is_empty_when_nothing_is_missing() -> None:
    src = " ".join(f"order ORD-{i:04d} shipped" for i in range(200))
    for room in (0, 3, 8, 20, 60):
        out = missing_facts_index(src, "", room, simple)
        assert out == "" or simple(out) <= room
    assert missing_facts_index(src, "", 8, simple).count("ORD-") >= 1
    assert missing_facts_index("HAT136 and 2024-05-20", "HAT136 on 2024-05-20", 50, simple) == ""
    assert missing_facts_index("nothing to see here", "", 50, simple) == ""


def test_missing_facts_index_leaves_json_field_names_out() -> None:
    src = json.dumps({"reservation_id": "4WQ150", "user_id": "mia_li_3668", "flight_number": "HAT136"})
    out = missing_facts_index(src, "", 100, simple)
    assert "reservation_id" not in out and "4WQ150" in out and "HAT136" in out


@given(st.text(max_size=300), st.text(max_size=100), st.integers(-5, 80))
@hsettings(max_examples=150, deadline=None)
def test_missing_facts_index_properties(src: str, summary: str, room: int) -> None:
    out = missing_facts_index(src, summary, room, simple)
    assert out == "" or (out.startswith(INDEX_LABEL + " ") and simple(out) <= room)
    assert all(key in src and key not in summary for key in out[len(INDEX_LABEL) + 1 :].split(" ") if out)


def test_pieces_of_a_line_are_joined_as_in_the_text() -> None:
    for text in ("1,234.50 " + "x" * 300 + " . .", "a,b;" + "y" * 500 + ", z. " + "w" * 300 + "!Done."):
        segments = [Segment("user", text)]
        for budget in (20, 80, 10_000):
            check_output(segments, condense(segments, budget, simple))


def _swapped(segments: Sequence[Segment]) -> list[Segment]:
    other = {"user": "assistant", "assistant": "user"}
    return [Segment(other[s.speaker], s.text) for s in segments]


def _same_label_cost(text: str) -> int:
    """``simple`` with both speakers' labels costing the same."""
    return simple(text.replace("[assistant] ", "[user] "))


@given(st.lists(chat_segment, min_size=1, max_size=16), st.integers(0, 400))
@hsettings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_in_a_chat_both_speakers_count_alike(segments: list[Segment], budget: int) -> None:
    """Two people chatting: who said a line does not decide whether it is kept (swapping the
    speakers keeps the same lines)."""
    out = condense(segments, budget, _same_label_cost)
    mirrored = condense(_swapped(segments), budget, _same_label_cost)
    swap = {"[user] ": "[assistant] ", "[assistant] ": "[user] "}
    assert mirrored == "\n".join(
        next((swap[p] + line[len(p) :] for p in swap if line.startswith(p)), line) for line in out.split("\n")
    )


@pytest.mark.parametrize("speaker", ["user", "tool result Bash"])
def test_a_lone_surrogate_is_condensed_like_any_other_text(speaker: str) -> None:
    """A client's JSON may carry a lone surrogate (``"\\ud800"``): it is text to condense, not a fault,
    in a chat (rarity of words) and in a long agent span (the byte-level prescore) alike."""
    lines = [f"line {k} about HAT{k:03d} \ud800 and more words here" for k in range(400)]
    segments = [Segment(speaker, "\n".join(lines))]
    out = condense(segments, 200, simple)
    assert out and simple(out) <= 200


# -- tool output by template --------------------------------------------------------------------

NEEDLE = "2026-11-03T10:00:55.001Z NOTE ticket OPS-4411: retry budget moved to the canary pool"


def _noisy_log(seed: int, needle: str, n: int = 110) -> str:
    """``n`` log lines full of numbers, timestamps and hex checksums, ``needle`` in the middle."""
    r = random.Random(seed)
    lines = [
        f"2026-11-03T10:{i // 60:02d}:{i % 60:02d}.{r.randrange(1000):03d}Z INFO worker-{r.randrange(1, 9)} "
        f"batch={seed * 1000 + i} chunk=0x{r.getrandbits(24):06x} sha={r.getrandbits(48):012x} "
        f"latency={r.randrange(3, 48)}ms rows={r.randrange(1000, 9000)} status=ok"
        for i in range(n)
    ]
    return "\n".join([*lines[: n // 2], needle, *lines[n // 2 :]])


def _log_session(needles: Sequence[str]) -> list[Segment]:
    segments = [Segment("user", "Read the worker logs one by one and tell me about anything unusual.")]
    for k, needle in enumerate(needles):
        segments += [
            Segment("tool call Bash", f"cat logs/worker-{k}.log"),
            Segment("tool result Bash", _noisy_log(k, needle)),
        ]
    return segments


@pytest.mark.parametrize("budget", [200, 400, 1000])
def test_a_needle_among_110_noisy_log_lines_survives_a_tight_budget(budget: int) -> None:
    count = bpe_counter("o200k_base") or simple
    segments = _log_session([NEEDLE])
    assert tokens_of(segments, count) > 5000
    out = condense(segments, budget, count)
    assert count(out) <= budget
    assert NEEDLE in out.split("\n") or f"[tool result Bash] {NEEDLE}" in out.split("\n")
    check_output(segments, out)


def test_every_needle_of_several_logs_is_kept_and_the_repetitive_lines_collapse() -> None:
    count = bpe_counter("o200k_base") or simple
    needles = [
        f"2026-11-03T10:00:55.001Z NOTE ticket OPS-{4400 + k}: moved shard {k} to the canary pool" for k in range(6)
    ]
    segments = _log_session(needles)
    out = condense(segments, 1500, count)  # a twentieth of the span
    assert all(n in out for n in needles)
    groups = [line for line in out.split("\n") if is_group_line(line.split("] ", 1)[-1])]
    assert groups and all("status=ok" in g and "×110 like: " in g for g in groups)
    check_output(segments, out)


def test_needles_stay_when_the_summary_is_condensed_again() -> None:
    """The extractive summary of earlier turns is condensed again with the newer ones: the rare
    lines it kept stay rare."""
    count = bpe_counter("o200k_base") or simple
    first = [
        f"2026-11-03T10:00:55.001Z NOTE ticket OPS-{4400 + k}: moved shard {k} to the canary pool" for k in range(3)
    ]
    summary = condense(_log_session(first), 600, count)
    assert all(n in summary for n in first)
    later = [f"2026-11-03T10:00:55.001Z WARN disk usage at 9{k}.5% on /var/lib/queue-{k}" for k in range(3)]
    segments = [Segment(SUMMARY_SPEAKER, summary), *_log_session(later)[1:]]
    out = condense(segments, 900, count)
    assert all(n in out for n in first + later)


def test_the_standouts_of_cleared_output_rank_first() -> None:
    count = bpe_counter("o200k_base") or simple
    cleared = "\n".join(["[output of Bash cleared to save context: 5000 tokens]", STANDOUTS_HEADER, NEEDLE])
    segments = [
        Segment("user", "Read the logs."),
        Segment("tool result Bash", cleared),
        *_log_session([f"2026-11-03T10:00:01.000Z NOTE shard {k} is fine" for k in range(2)])[1:],
    ]
    out = condense(segments, 300, count)
    assert NEEDLE in out
    # its index of facts (cleared_index) is no standout: it weighs as a common line, its facts go
    # to the new index unless lines quote them
    index = f"{INDEX_LABEL} shard_7 OPS-4507 /var/lib/queue-7"
    units = [text for text, _ in cut_units(f"{cleared}\n{index}", set())]
    marked = template_marks("tool result Bash", [(text, None) for text in units])
    assert marked is not None
    bonuses, factors, _ = marked
    assert bonuses[units.index(NEEDLE)] == RARE_BONUS
    assert bonuses[units.index(index)] == 0.0 and factors[units.index(index)] == COMMON_FACTOR


def test_when_everything_fits_no_group_line_is_added() -> None:
    segments = _log_session([NEEDLE])
    out = condense(segments, 100_000, simple)
    assert not any(is_group_line(line.split("] ", 1)[-1]) for line in out.split("\n"))
    assert out.count("\n") >= 110


def test_a_summary_condensed_again_keeps_its_facts_within_any_budget() -> None:
    count = bpe_counter("o200k_base") or simple
    lines = [
        f"[tool result Read] /srv/app/module_{i}.py defines handler_{i} for ticket OPS-{4100 + i}" for i in range(30)
    ]
    summary = "\n".join([*lines, f"{INDEX_LABEL} deploy_7f3a9 build-2291 /etc/app/limits.yaml"])
    for budget in (16, 40, 120, 400):
        shorter = condense_summary(summary, budget, count)
        assert shorter and count(shorter) <= budget
        assert not shorter.startswith(f"[{SUMMARY_SPEAKER}]")  # a summary alone needs no label
        lines_only = condense([Segment(SUMMARY_SPEAKER, summary)], budget, count)
        assert fact_retention(summary, shorter) >= fact_retention(summary, lines_only)
    # at a budget of a few lines, the index of its facts keeps more of them than the lines would
    tight = condense_summary(summary, 40, count)
    assert tight.startswith(INDEX_LABEL) and fact_retention(summary, tight) > fact_retention(
        summary, condense([Segment(SUMMARY_SPEAKER, summary)], 40, count)
    )
