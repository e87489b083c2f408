"""An event-loop lag probe to load into a ``litellm`` proxy as a callback (benchmarks only).

Copied next to a proxy's config and registered with ``callbacks: ["loop_probe.probe"]`` (first in
the list), it adds ``GET /loop-probe`` to the proxy. The first call starts a task that sleeps
``INTERVAL_S`` again and again and records by how much each sleep overran: the time the loop was
busy with something else (the loop's lag). Each call answers the lag samples since the previous
``?reset=1`` call (count, p50, p99, max, and the number over 20 ms), the process's RSS, and, when
the ``litellm_ctx_hook`` plugin is loaded in the same proxy, the timing of its synchronous sections
on the loop, its worker's queue and the sizes of its in-process structures; and what went on
during the slowest 1 % of the samples against all of them: the plugin's worker thread's CPU time,
its sections' time, and the garbage collections run on the loop's thread.
"""

from __future__ import annotations

import asyncio
import gc
import sys
import threading
import time
from collections.abc import Iterable
from typing import Any

from litellm.integrations.custom_logger import CustomLogger
from litellm.proxy.proxy_server import app

INTERVAL_S = 0.005


def _rss_kib() -> int:
    with open("/proc/self/status", encoding="ascii") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def _pct(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _hook() -> Any:
    """The plugin's hook, when the plugin is loaded in this proxy."""
    module = sys.modules.get("litellm_ctx_hook.proxy.hook")
    return getattr(module, "proxy_handler_instance", None) if module is not None else None


def _plugin(reset: bool) -> dict[str, Any] | None:
    hook = _hook()
    if hook is None:
        return None
    out: dict[str, Any] = {"sections": dict(hook.sections.snapshot()), "worker": hook.offloop.snapshot()}
    pacer = hook.offloop.pacer
    out["pacing"] = pacer.snapshot() if pacer is not None else None
    out["sizes"] = structure_sizes(hook)
    out["stats"] = hook.engine.stats.snapshot()
    if reset:
        hook.sections.reset()
        if pacer is not None:
            pacer.reset()
    return out


def structure_sizes(hook: Any) -> dict[str, int]:
    """Entries held by every structure of the plugin that could grow with traffic."""
    return dict(hook.structure_sizes())


def _worker_cpu_s(hook: Any) -> float:
    """The CPU time of the plugin's worker thread so far (0 without the plugin or its worker)."""
    thread = hook.offloop.thread if hook is not None else None
    if thread is None or thread.ident is None:
        return 0.0
    try:
        return time.clock_gettime(time.pthread_getcpuclockid(thread.ident))
    except OSError:  # the thread has ended
        return 0.0


def _sections_s(hook: Any) -> float:
    return float(hook.sections.total_s) if hook is not None else 0.0


def _slowest(
    lags: list[float], worker: list[float], sections: list[float], collecting: list[float], loop_cpu: list[float]
) -> dict[str, Any]:
    """What went on during the slowest 1 % of the samples, against all of them (mean ms per
    sample): the plugin's worker's CPU time and its sections' time on the loop; the garbage
    collections on the loop's thread; and the loop's thread's own CPU time (a sample's lag beyond
    it is time the thread waited: for the interpreter lock or for a core)."""
    n = min(len(lags), len(worker), len(sections), len(collecting), len(loop_cpu))
    if n == 0:
        return {}
    slow = sorted(range(n), key=lambda i: lags[i])[-max(1, n // 100) :]

    def mean_ms(values: list[float], idx: Iterable[int]) -> float:
        chosen = list(idx)
        return round(sum(values[i] for i in chosen) * 1000 / len(chosen), 3)

    return {
        "samples": len(slow),
        "worker_cpu_ms": mean_ms(worker, slow),
        "worker_cpu_ms_all": mean_ms(worker, range(n)),
        "sections_ms": mean_ms(sections, slow),
        "sections_ms_all": mean_ms(sections, range(n)),
        "loop_gc_ms": mean_ms(collecting, slow),
        "loop_gc_ms_all": mean_ms(collecting, range(n)),
        "loop_cpu_ms": mean_ms(loop_cpu, slow),
        "loop_cpu_ms_all": mean_ms(loop_cpu, range(n)),
        "lag_ms": mean_ms(lags, slow),
    }


class GcTimer:
    """Durations of the garbage collector's collections (``gc.callbacks``), by generation."""

    def __init__(self) -> None:
        self.started = 0.0
        self.loop_thread: int | None = None  # the proxy's loop's thread
        self.on_loop_s = 0.0  # time in collections run on that thread, so far
        self.reset()
        gc.callbacks.append(self.callback)

    def reset(self) -> None:
        self.count = [0, 0, 0]
        self.max_s = [0.0, 0.0, 0.0]

    def callback(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self.started = time.perf_counter()
            return
        gen = int(info.get("generation", 0))
        took = time.perf_counter() - self.started
        if threading.get_ident() == self.loop_thread:
            self.on_loop_s += took
        self.count[gen] += 1
        self.max_s[gen] = max(self.max_s[gen], took)

    def report(self) -> dict[str, Any]:
        return {"collections": list(self.count), "max_ms": [round(x * 1000, 1) for x in self.max_s]}


class LoopProbe(CustomLogger):
    def __init__(self) -> None:
        super().__init__()
        self.samples: list[float] = []
        self.worker: list[float] = []  # the plugin's worker thread's CPU time during each sample
        self.sections: list[float] = []  # the plugin's sections on the loop during each sample
        self.collecting: list[float] = []  # garbage collections on the loop's thread during each sample
        self.loop_cpu: list[float] = []  # the loop's thread's CPU time during each sample
        self.cpu_since = time.process_time()  # the process's CPU time at the last reset
        self.wall_since = time.perf_counter()
        self.task: asyncio.Task[None] | None = None
        self.gc = GcTimer()

    async def sample(self) -> None:
        self.gc.loop_thread = threading.get_ident()
        while True:
            started = time.perf_counter()
            hook = _hook()
            worker, sections, collecting = _worker_cpu_s(hook), _sections_s(hook), self.gc.on_loop_s
            cpu = time.thread_time()
            await asyncio.sleep(INTERVAL_S)
            self.loop_cpu.append(time.thread_time() - cpu)
            self.samples.append(time.perf_counter() - started - INTERVAL_S)
            self.worker.append(max(0.0, _worker_cpu_s(hook) - worker))
            self.sections.append(max(0.0, _sections_s(hook) - sections))  # 0 across a reset
            self.collecting.append(self.gc.on_loop_s - collecting)

    async def report(self, reset: int = 0) -> dict[str, Any]:
        if self.task is None:
            self.task = asyncio.get_running_loop().create_task(self.sample())
        lags = self.samples
        out = {
            "samples": len(lags),
            "lag_p50_ms": round(_pct(lags, 0.5) * 1000, 3),
            "lag_p99_ms": round(_pct(lags, 0.99) * 1000, 3),
            "lag_max_ms": round(max(lags, default=0.0) * 1000, 3),
            "lag_over_20ms": sum(1 for x in lags if x > 0.02),
            "lags_ms": [round(x * 1000, 3) for x in lags],  # every sample, to pool runs
            "rss_kib": _rss_kib(),
            "gc": self.gc.report(),
            "plugin": _plugin(bool(reset)),
            "slowest": _slowest(lags, self.worker, self.sections, self.collecting, self.loop_cpu),
            # the whole process's CPU time per second since the last reset (all its threads)
            "cpu_share": round((time.process_time() - self.cpu_since) / (time.perf_counter() - self.wall_since), 3),
        }
        if reset:
            self.samples, self.worker, self.sections, self.collecting, self.loop_cpu = [], [], [], [], []
            self.cpu_since, self.wall_since = time.process_time(), time.perf_counter()
            self.gc.reset()
        return out


probe = LoopProbe()
app.add_api_route("/loop-probe", probe.report, methods=["GET"])
