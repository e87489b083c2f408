"""Planning: the pinned tail, and the span an aggressive condensation takes with the recent atoms it
leaves verbatim."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from support import settings

from litellm_ctx_hook.conversation import Message, Part, PartKind, Role
from litellm_ctx_hook.planning.atoms import Atom
from litellm_ctx_hook.planning.plan import Regions, aggressive_span, fitting_regions, regions

SETTINGS = settings(condensation_min_messages=1)


def _atoms(sizes: list[int]) -> list[Atom]:
    out, start = [], 0
    for n in sizes:
        out.append(Atom(start, start + n))
        start += n
    return out


def test_recent_atoms_stay_verbatim_within_the_tokens() -> None:
    atoms = _atoms([1] * 10)
    assert aggressive_span(atoms, [100] * 10, 350, SETTINGS) == (0, 7)  # three fit in 350 tokens


def test_keep_messages_caps_the_verbatim_tail() -> None:
    atoms = _atoms([1] * 10)
    assert aggressive_span(atoms, [10] * 10, 10_000, SETTINGS, keep_messages=4) == (0, 6)
    assert aggressive_span(atoms, [10] * 10, 10_000, SETTINGS) is None  # everything fits: nothing to condense


def test_an_atom_is_never_split_by_the_message_cap() -> None:
    atoms = _atoms([1, 3, 2])  # the last two atoms hold 5 messages
    assert aggressive_span(atoms, [10, 10, 10], 10_000, SETTINGS, keep_messages=4) == (0, 2)


@given(
    st.lists(st.integers(1, 4), min_size=1, max_size=30),
    st.lists(st.integers(0, 500), min_size=30, max_size=30),
    st.integers(0, 3000),
    st.one_of(st.none(), st.integers(0, 20)),
)
def test_the_tail_fits_both_caps_and_the_span_is_a_prefix(
    sizes: list[int], tokens: list[int], keep_tokens: int, keep_messages: int | None
) -> None:
    atoms = _atoms(sizes)
    per = tokens[: len(atoms)]
    span = aggressive_span(atoms, per, keep_tokens, SETTINGS, keep_messages)
    if span is None:
        return
    first, end = span
    assert first == 0 and 0 < end <= len(atoms)
    assert sum(per[end:]) <= keep_tokens
    if keep_messages is not None:
        assert sum(sizes[end:]) <= keep_messages


def _agent(turns: int) -> list[Message]:
    messages = [Message(Role.SYSTEM, (Part(PartKind.TEXT, "agent"),)), Message(Role.USER, (Part(PartKind.TEXT, "go"),))]
    for k in range(turns):
        call = Part(PartKind.TOOL_CALL, "bash {}", tool_id=f"c{k}", tool_name="bash")
        messages.append(Message(Role.ASSISTANT, (call,)))
        messages.append(Message(Role.TOOL, (Part(PartKind.TOOL_RESULT, "out", tool_id=f"c{k}"),)))
    return messages


@given(st.lists(st.integers(min_value=1, max_value=5_000), min_size=2, max_size=12), st.integers(100, 20_000))
def test_the_pinned_tail_shrinks_only_as_far_as_it_must(sizes: list[int], room: int) -> None:
    messages = _agent(len(sizes))
    tokens = [10, 10] + [t for size in sizes for t in (20, size)]
    full = regions(messages, SETTINGS)
    fitted = fitting_regions(messages, SETTINGS, tokens, room)

    def pinned(reg: Regions) -> int:
        return sum(t for i, t in enumerate(tokens) if reg.pinned(i))

    assert fitted.head_end == full.head_end and fitted.tail_start >= full.tail_start
    tail_atoms = sum(1 for a in fitted.atoms if a.start >= fitted.tail_start)
    assert tail_atoms >= 1  # the newest atom is always kept
    if pinned(full) <= room:
        assert fitted == full
    else:
        assert pinned(fitted) <= room or tail_atoms == 1
        if tail_atoms < SETTINGS.condensation_keep_recent:  # one atom more would not have fitted
            assert pinned(regions(messages, SETTINGS, tail_atoms + 1)) > room
