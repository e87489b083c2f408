"""A long, realistic coding-agent session, generated deterministically (no data files needed).

The agent investigates a failing test suite in a small web service: it lists files, reads
modules, runs tests, edits code and reports. Tool outputs are long (file contents, test logs),
as in real agent traffic, and carry identifiers, paths and numbers worth keeping.
"""

from __future__ import annotations

import json
import random
from typing import Any

SYSTEM = (
    "You are a senior software engineer working in a Python repository through tools. Use `bash` to run "
    "commands and `edit_file` to change files. Explain briefly what you do, keep changes minimal, and run the "
    "tests after every change."
)
TASK = (
    "The CI for acme/billing-service fails since commit 4f9c2e1: test_invoice_totals and test_refund_flow in "
    "tests/test_invoices.py are red. Find the cause, fix it, and tell me what changed. Ticket BILL-2291."
)
MODULES = [
    "billing/invoices.py",
    "billing/refunds.py",
    "billing/currency.py",
    "billing/models.py",
    "billing/db.py",
    "billing/api/routes.py",
    "billing/api/schemas.py",
    "billing/tax.py",
    "billing/discounts.py",
    "billing/audit.py",
]
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "bash",
            "description": "Run a shell command in the repository.",
            "parameters": {
                "type": "object",
                "properties": {"command": {"type": "string", "description": "The command"}},
                "required": ["command"],
            },
        },
    },
    {
        "type": "function",
        "function": {
            "name": "edit_file",
            "description": "Replace text in a file.",
            "parameters": {
                "type": "object",
                "properties": {"path": {"type": "string"}, "old": {"type": "string"}, "new": {"type": "string"}},
                "required": ["path", "old", "new"],
            },
        },
    },
]


def _code(rng: random.Random, path: str, lines: int) -> str:
    out = [f"# {path}", "from decimal import Decimal, ROUND_HALF_UP", ""]
    for k in range(lines):
        name = rng.choice(["total", "subtotal", "tax", "amount", "refund", "discount", "rate"])
        n = rng.randint(1, 999)
        out.append(
            rng.choice(
                [
                    f"def compute_{name}_{k}(invoice, rate=Decimal('0.{n:03d}')):",
                    f"    {name} = invoice.lines[{k % 7}].amount * rate  # BILL-{1000 + n}",
                    f"    return {name}.quantize(Decimal('0.01'), rounding=ROUND_HALF_UP)",
                    f"    if invoice.currency != 'EUR': {name} = convert({name}, invoice.currency, 'EUR')",
                    f"    log.debug('invoice %s {name}=%s', invoice.id, {name})",
                    "",
                ]
            )
        )
    return "\n".join(out)


def _test_log(rng: random.Random, failing: bool, step: int) -> str:
    lines = [
        "============================= test session starts ==============================",
        "platform linux -- Python 3.11.7, pytest-8.3.2",
        f"collected {120 + step} items",
        "",
    ]
    for k in range(40):
        lines.append(f"tests/test_{rng.choice(['api', 'tax', 'currency', 'models'])}.py::test_case_{k} PASSED")
    if failing:
        lines += [
            "tests/test_invoices.py::test_invoice_totals FAILED",
            "tests/test_invoices.py::test_refund_flow FAILED",
            "",
            "    def test_invoice_totals():",
            "        invoice = make_invoice(lines=[('A-100', '19.99', 3), ('B-200', '5.01', 1)])",
            ">       assert invoice.total == Decimal('64.98')",
            f"E       AssertionError: assert Decimal('64.9{step % 10}') == Decimal('64.98')",
            "billing/invoices.py:88: AssertionError",
            f"========================= 2 failed, {118 + step} passed in 4.{step % 10}1s =========================",
        ]
    else:
        lines.append(f"============================= {122 + step} passed in 4.52s ==============================")
    return "\n".join(lines)


def generate_session(turns: int = 60, seed: int = 7) -> dict[str, Any]:
    """An OpenAI chat-completions request body: system, task, then ``turns`` tool exchanges."""
    rng = random.Random(seed)
    messages: list[dict[str, Any]] = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": TASK}]
    for k in range(turns):
        call_id = f"call_{k:03d}_{rng.randrange(16**6):06x}"
        phase = k % 6
        if phase == 0:
            name, args = "bash", {"command": "git log --oneline -15 && git show --stat 4f9c2e1"}
            result = "\n".join(
                f"{rng.randrange(16**7):07x} {rng.choice(['fix', 'feat', 'chore'])}: change {j}" for j in range(15)
            )
            say = f"The regression window starts at 4f9c2e1; {len(MODULES)} modules changed recently."
        elif phase in (1, 2):
            path = MODULES[(k // 2) % len(MODULES)]
            name, args = "bash", {"command": f"sed -n 1,160p {path}"}
            result = _code(rng, path, 120)
            say = f"Read {path}: the rounding in compute_total_{k} uses ROUND_HALF_UP per line, not per invoice."
        elif phase == 3:
            name, args = "bash", {"command": "python -m pytest tests/ -q -x --no-header"}
            result = _test_log(rng, failing=k < turns - 6, step=k)
            say = "Tests still fail on test_invoice_totals (off by one cent)." if k < turns - 6 else "All green."
        elif phase == 4:
            path = MODULES[k % len(MODULES)]
            name, args = "edit_file", {"path": path, "old": "rounding=ROUND_HALF_UP", "new": "rounding=ROUND_HALF_EVEN"}
            result = f"Edited {path}: 1 replacement at line {rng.randint(20, 180)}."
            say = f"Changed the rounding mode in {path}."
        else:
            name, args = "bash", {"command": "grep -rn 'quantize' billing/ | head -40"}
            result = "\n".join(
                f"{rng.choice(MODULES)}:{rng.randint(10, 300)}:    x = y.quantize(Decimal('0.01'))" for _ in range(40)
            )
            say = "Found every place that quantizes amounts."
        messages.append(
            {
                "role": "assistant",
                "content": f"Step {k + 1}: running {name}.",
                "tool_calls": [
                    {"id": call_id, "type": "function", "function": {"name": name, "arguments": json.dumps(args)}}
                ],
            }
        )
        messages.append({"role": "tool", "tool_call_id": call_id, "content": result})
        messages.append({"role": "assistant", "content": say})
        if k % 10 == 9:
            messages.append(
                {
                    "role": "user",
                    "content": f"Progress check {k // 10 + 1}: keep going, and keep BILL-2291 in the commit message.",
                }
            )
    messages.append({"role": "user", "content": "Summarise the root cause and the fix for BILL-2291."})
    return {"model": "gpt-4o", "messages": messages, "tools": TOOLS}


def turns_of(body: dict[str, Any]) -> list[dict[str, Any]]:
    """The request the client sends at each assistant call (the conversation up to that call)."""
    msgs = body["messages"]
    return [
        {**body, "messages": msgs[:k]}
        for k in range(2, len(msgs) + 1)
        if k == len(msgs) or (msgs[k]["role"] == "assistant" and msgs[k - 1]["role"] != "assistant")
    ]


def anthropic_messages(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """An OpenAI conversation as Anthropic ``/v1/messages`` blocks: no system message, tool calls
    as ``tool_use``, tool results as ``tool_result`` blocks of a user message, one message per run
    of a role (so roles alternate)."""
    out: list[dict[str, Any]] = []
    for m in messages:
        role = m.get("role")
        if role == "system":
            continue
        if role == "tool":
            blocks: list[dict[str, Any]] = [
                {"type": "tool_result", "tool_use_id": m["tool_call_id"], "content": m.get("content") or ""}
            ]
            role = "user"
        else:
            blocks = (
                [{"type": "text", "text": m["content"]}] if isinstance(m.get("content"), str) and m["content"] else []
            )
            for call in m.get("tool_calls") or []:
                try:
                    args = json.loads(call["function"]["arguments"])
                except (ValueError, TypeError):
                    args = {"raw": call["function"].get("arguments")}
                blocks.append({"type": "tool_use", "id": call["id"], "name": call["function"]["name"], "input": args})
        if not blocks:
            continue
        if out and out[-1]["role"] == role:
            out[-1]["content"].extend(blocks)
        else:
            out.append({"role": role, "content": blocks})
    return out
