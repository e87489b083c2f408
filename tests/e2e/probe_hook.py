"""A throwaway probe callback for ``test_litellm_facts.py``: records what LiteLLM hands a hook.

Registered with ``litellm_settings: callbacks: ["probe_hook.probe_instance"]``. LiteLLM resolves
that path by first looking for ``probe_hook.py`` in the config file's directory (loaded from that
file, under the module name ``probe_hook``, without entering ``sys.modules``), and only then by
``importlib.import_module("probe_hook")``. The tests copy this file next to the generated config.

Every event is appended as one JSON line to the file named by ``PROBE_RECORD_FILE``.

The pre-call hook records the call type, the top-level keys of ``data``, both metadata keys and
their ``user_api_key_*`` fields, ``data["model"]`` and whether the proxy's router is reachable; it
stashes a token in the route's metadata, replaces the last user text with
``probed[<call_type>]: <text>`` and returns ``data``. The last user text may carry directives:

* ``probe:raise-http`` — raise ``fastapi.HTTPException(400, detail={"error": ...})``;
* ``probe:raise-runtime`` — raise ``RuntimeError`` (an unexpected fault);
* ``probe:return-string`` — return a string instead of ``data``;
* ``probe:summarize`` (or env ``PROBE_CALL_SUMMARIZER=1``) — call the ``summarizer`` alias through
  ``litellm.proxy.proxy_server.llm_router.acompletion`` from inside the hook;
* ``probe:stash-top-level`` — add a top-level key ``probe_top_level`` to ``data``.

The response-headers hook adds ``x-probe: 1`` (and ``x-probe-token`` when it sees the stash); the
success-logging hook records each call's model group and metadata tags (inner calls included); a
Prometheus counter ``probe_hook_calls_total`` in the default registry counts pre-call invocations.
"""

from __future__ import annotations

import json
import os
import sys
import uuid
from typing import Any

from fastapi import HTTPException
from litellm.integrations.custom_logger import CustomLogger

TRANSCRIPT = (
    "<conversation_transcript>\n[user] build ticket BILL-2291 failed in src/billing_core.py at line 42\n"
    "</conversation_transcript>"
)
USER_KEY_FIELDS = ("user_api_key_team_id", "user_api_key_hash", "user_api_key_alias", "user_api_key_user_id")


def _record(event: dict[str, Any]) -> None:
    path = os.environ.get("PROBE_RECORD_FILE")
    if path:
        with open(path, "a", encoding="utf-8") as f:
            f.write(json.dumps(event, default=repr) + "\n")


_record({"event": "loaded", "module": __name__, "file": __file__, "in_sys_modules": __name__ in sys.modules})


def _last_user_text(data: dict[str, Any]) -> tuple[str, Any]:
    """(text, setter) for the last user text of a chat, Anthropic or Responses body."""
    if isinstance(data.get("input"), str):
        return data["input"], lambda new: data.__setitem__("input", new)
    items = data.get("messages")
    if not isinstance(items, list):
        items = data.get("input") if isinstance(data.get("input"), list) else []
    for item in reversed(items):
        if not isinstance(item, dict) or item.get("role") != "user":
            continue
        content = item.get("content")
        if isinstance(content, str):
            return content, lambda new, item=item: item.__setitem__("content", new)
        if isinstance(content, list):
            for part in reversed(content):
                if isinstance(part, dict) and isinstance(part.get("text"), str):
                    return part["text"], lambda new, part=part: part.__setitem__("text", new)
    return "", lambda new: None


def _metadata_view(md: Any) -> dict[str, Any] | None:
    if not isinstance(md, dict):
        return None
    return {"keys": sorted(md), "user_api_key": {k: md.get(k) for k in USER_KEY_FIELDS if k in md}}


def _router() -> Any:
    from litellm.proxy import proxy_server

    return proxy_server.llm_router


class ProbeHook(CustomLogger):
    def __init__(self) -> None:
        super().__init__()
        self._counter: Any = None  # created on first use: only the registered instance registers it

    async def async_pre_call_hook(
        self, user_api_key_dict: Any, cache: Any, data: dict[str, Any], call_type: Any
    ) -> Any:
        self._count_call(str(call_type))
        text, set_text = _last_user_text(data)
        route_key = "litellm_metadata" if "litellm_metadata" in data else "metadata"
        router = _router()
        token = uuid.uuid4().hex
        record: dict[str, Any] = {
            "event": "pre_call",
            "call_type": str(call_type),
            "data_keys": sorted(data),
            "model": data.get("model"),
            "stream": data.get("stream"),
            "metadata": _metadata_view(data.get("metadata")),
            "litellm_metadata": _metadata_view(data.get("litellm_metadata")),
            "user_api_key_dict": {
                "team_id": getattr(user_api_key_dict, "team_id", None),
                "key_alias": getattr(user_api_key_dict, "key_alias", None),
                "api_key_set": bool(getattr(user_api_key_dict, "api_key", None)),
            },
            "cache_type": type(cache).__name__,
            "router_is_set": router is not None,
            "router_model_names": sorted(router.get_model_names()) if router is not None else None,
            "last_user_text": text,
            "token": token,
        }
        try:
            if "probe:raise-http" in text:
                raise HTTPException(
                    status_code=400, detail={"error": "probe rejected: context_window_exceeded", "ctx_tokens": 1234}
                )
            if "probe:raise-runtime" in text:
                raise RuntimeError("probe exploded unexpectedly")
            if "probe:return-string" in text:
                return "probe says no"
            if "probe:summarize" in text or os.environ.get("PROBE_CALL_SUMMARIZER") == "1":
                record["summarizer"] = await self._call_summarizer(router, data.get(route_key) or {}, token)
            if "probe:stash-top-level" in text:
                data["probe_top_level"] = token
            md = data.get(route_key)
            if isinstance(md, dict):
                md["probe_token"] = token
                md["probe_call_type"] = str(call_type)
            set_text(f"probed[{call_type}]: {text}")
            return data
        finally:
            _record(record)

    def _count_call(self, call_type: str) -> None:
        """A Prometheus counter in the default registry (does it show on LiteLLM's /metrics?)."""
        if self._counter is None:
            from prometheus_client import Counter

            self._counter = Counter("probe_hook_calls", "Pre-call hook invocations of the probe", ["call_type"])
        self._counter.labels(call_type=call_type).inc()

    async def _call_summarizer(self, router: Any, caller_md: dict[str, Any], token: str) -> dict[str, Any]:
        metadata = {k: caller_md[k] for k in USER_KEY_FIELDS if k in caller_md}
        metadata.update(probe_inner_call=True, probe_parent_token=token)
        try:
            response = await router.acompletion(
                model=os.environ.get("PROBE_SUMMARIZER_MODEL", "summarizer"),
                messages=[
                    {"role": "system", "content": "Summarise the transcript in <conversation_transcript>."},
                    {"role": "user", "content": TRANSCRIPT},
                ],
                metadata=metadata,
                num_retries=0,
                timeout=20,
            )
            return {"ok": True, "text": response.choices[0].message.content, "model": response.model}
        except Exception as e:  # recorded for the test to show
            return {"ok": False, "error": f"{type(e).__name__}: {e}"}

    async def async_log_success_event(self, kwargs: Any, response_obj: Any, start_time: Any, end_time: Any) -> None:
        slo = kwargs.get("standard_logging_object") or {}
        md = (kwargs.get("litellm_params") or {}).get("metadata") or {}
        _record(
            {
                "event": "success_log",
                "call_type": kwargs.get("call_type"),
                "model_group": slo.get("model_group"),
                "probe_inner_call": md.get("probe_inner_call"),
                "probe_parent_token": md.get("probe_parent_token"),
                "user_api_key_hash": (slo.get("metadata") or {}).get("user_api_key_hash"),
                "response_cost": slo.get("response_cost"),
            }
        )

    async def async_post_call_response_headers_hook(
        self,
        data: dict[str, Any],
        user_api_key_dict: Any,
        response: Any,
        request_headers: dict[str, str] | None = None,
        litellm_call_info: dict[str, Any] | None = None,
    ) -> dict[str, str] | None:
        md = data.get("litellm_metadata") if "litellm_metadata" in data else data.get("metadata")
        md = md if isinstance(md, dict) else {}
        _record(
            {
                "event": "headers",
                "response_type": type(response).__name__,
                "response_is_none": response is None,
                "probe_token": md.get("probe_token"),
                "probe_call_type": md.get("probe_call_type"),
                "has_request_headers": bool(request_headers),
                "litellm_call_info": litellm_call_info,
            }
        )
        headers = {"x-probe": "1"}
        if md.get("probe_token"):
            headers["x-probe-token"] = str(md["probe_token"])
        return headers


class LoadRecorder(CustomLogger):
    """No hooks: registered through an importable dotted path to show how that path is resolved."""


probe_instance = ProbeHook()
recorder_instance = LoadRecorder()
