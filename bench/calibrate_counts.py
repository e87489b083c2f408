"""Fit the Claude and Gemini token estimators on real provider usage in ../shared/evaldata.

Ground truth (see the evaldata README): the difference in real context between two consecutive
assistant calls is the provider's count of the messages added in between. The estimator is
linear in per-kind o200k_base token counts and block counts, so ordinary least squares on the
*relative* error (rows divided by the true value) fits it. Prints the coefficients to paste into
``litellm_ctx_hook/analysis/counting.py`` and the in-sample and leave-one-session-out error.

    python -m bench.calibrate_counts
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from litellm_ctx_hook.adapters import adapter_for
from litellm_ctx_hook.analysis.counting import TokenCounter
from litellm_ctx_hook.analysis.tokenizers import Family
from litellm_ctx_hook.conversation import Message, PartKind
from litellm_ctx_hook.settings import load_settings

from . import evaldata

CLAUDE_SCALES = (PartKind.TEXT, PartKind.THINKING, PartKind.TOOL_CALL, PartKind.TOOL_RESULT)
CLAUDE_BLOCKS = (PartKind.TEXT, PartKind.THINKING, PartKind.TOOL_CALL)  # a result always follows a call
GEMINI_SCALES = (PartKind.TEXT,)


def context_tokens(message: dict[str, Any]) -> int:
    """The real context of the call that produced ``message`` (cached and uncached input)."""
    u = message["usage"]
    return int(u["input_tokens"] + u.get("cache_creation_input_tokens", 0) + u.get("cache_read_input_tokens", 0))


def claude_steps() -> Iterator[tuple[str, Sequence[Message], int]]:
    """(session, messages added between two assistant calls, real context difference)."""
    adapter = adapter_for("anthropic")
    for sample in evaldata.claude_sessions():
        msgs = sample.messages
        conv = adapter.parse(sample.body)
        cuts = {c["summary_message_index"] for c in sample.extra["compactions"]}
        calls = [i for i, m in enumerate(msgs) if m["role"] == "assistant" and "usage" in m]

        for a, b in itertools.pairwise(calls):
            if any(a < c <= b for c in cuts):
                continue  # Claude Code compacted here: the context shrank
            yield sample.name, conv.messages[a:b], context_tokens(msgs[b]) - context_tokens(msgs[a])


def gemini_steps() -> Iterator[tuple[str, Sequence[Message], int]]:
    adapter = adapter_for("openai")
    for sample in evaldata.gemini_runs():
        msgs = sample.messages
        conv = adapter.parse(sample.body)
        calls = [i for i, m in enumerate(msgs) if m["role"] == "assistant" and "usage" in m]
        for a, b in itertools.pairwise(calls):
            delta = msgs[b]["usage"]["prompt_tokens"] - msgs[a]["usage"]["prompt_tokens"]
            yield sample.name, conv.messages[a:b], delta


def design_matrix(
    steps: Sequence[tuple[str, Sequence[Message], int]],
    family: Family,
    scales: Sequence[PartKind],
    blocks: Sequence[PartKind],
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    counter = TokenCounter(load_settings(tiktoken_cache_size=0))
    rows, ys, groups = [], [], []
    for group, messages, delta in steps:
        row = np.zeros(len(scales) + len(blocks) + 1)
        for m in messages:
            bpe, blk = counter.features(m, family)
            for k, kind in enumerate(scales):
                row[k] += bpe.get(kind, 0)
            # kinds without their own scale are counted at the first scale (text)
            row[0] += sum(v for kind, v in bpe.items() if kind not in scales)
            for k, kind in enumerate(blocks):
                row[len(scales) + k] += blk.get(kind, 0)
            row[-1] += 1
        rows.append(row)
        ys.append(delta)
        groups.append(group)
    return np.array(rows), np.array(ys, float), groups


def fit(x: np.ndarray, y: np.ndarray, iterations: int = 50) -> np.ndarray:
    """Least absolute *relative* error, by iteratively reweighted least squares.

    L1 rather than L2 so that the few steps with content the transcripts do not show (Claude
    Code's injected reminders, provider-side noise) do not drag the fit for every other step.
    """
    a = x / y[:, None]
    b = np.ones_like(y)
    w = np.ones_like(y)
    coef = np.zeros(x.shape[1])
    for _ in range(iterations):
        coef, *_ = np.linalg.lstsq(a * w[:, None], b * w, rcond=None)
        w = 1.0 / np.sqrt(np.maximum(np.abs(a @ coef - b), 1e-3))
    # L1 fits the typical step; rescale so the total over all steps is unbiased, since an
    # estimator that undercounts long conversations is the one that lets requests overflow.
    scaled: np.ndarray = np.asarray(coef) * (y.sum() / (x @ coef).sum())
    return scaled


def errors(pred: np.ndarray, y: np.ndarray) -> dict[str, float]:
    rel = (pred - y) / y
    return {
        "steps": len(y),
        "aggregate_error": float((pred.sum() - y.sum()) / y.sum()),
        "p50_abs_error": float(np.percentile(np.abs(rel), 50)),
        "p90_abs_error": float(np.percentile(np.abs(rel), 90)),
        "share_within_15pct": float(np.mean(np.abs(rel) <= 0.15)),
    }


def leave_one_group_out(x: np.ndarray, y: np.ndarray, groups: list[str]) -> dict[str, float]:
    pred = np.zeros_like(y)
    g = np.array(groups)
    for name in sorted(set(groups)):
        test = g == name
        pred[test] = x[test] @ fit(x[~test], y[~test])
    return errors(pred, y)


def run(
    label: str,
    steps: list[tuple[str, Sequence[Message], int]],
    family: Family,
    scales: Sequence[PartKind],
    blocks: Sequence[PartKind],
) -> dict[str, object]:
    positive = [s for s in steps if s[2] > 0]  # a few Gemini steps shrink: provider-side noise
    x, y, groups = design_matrix(positive, family, scales, blocks)
    coef = fit(x, y)
    names = [f"scale[{k.value}]" for k in scales] + [f"per_block[{k.value}]" for k in blocks] + ["per_message"]
    return {
        "family": label,
        "dropped_non_positive_steps": len(steps) - len(positive),
        "coefficients": {n: round(float(c), 3) for n, c in zip(names, coef, strict=True)},
        "in_sample": errors(x @ coef, y),
        "leave_one_conversation_out": leave_one_group_out(x, y, groups),
    }


def main() -> None:
    out = [
        run("claude", list(claude_steps()), Family.CLAUDE, CLAUDE_SCALES, CLAUDE_BLOCKS),
        run("gemini", list(gemini_steps()), Family.GEMINI, GEMINI_SCALES, ()),
    ]
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
