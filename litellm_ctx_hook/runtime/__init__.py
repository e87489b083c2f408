"""The off-loop worker, pacing, shutdown, logs and per-process statistics: what every layer above runs on."""
