"""A sample of the differential fuzzing benchmark (``python -m bench.fuzz`` sends 10,002 bodies):
the same fuzzed bodies through a proxy without and with the plugin, compared."""

from __future__ import annotations

from bench import fuzz
from bench.fuzz_corpus import ROUTES, SEED


def test_a_fuzzed_sample_finds_nothing() -> None:
    report = fuzz.run(120, SEED)
    assert set(report.by_route) == set(ROUTES)
    assert len(report.by_mutation) >= 8  # most kinds of mutation are in the sample
    assert report.managed > 0  # some bodies were over their window and managed, not only passed through
    assert report.findings == []
    assert report.plugin_tracebacks == 0 and report.plugin_errors == 0
