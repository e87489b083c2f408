"""Test-wide set-up: LiteLLM offline (its bundled model table, no network)."""

from __future__ import annotations

import os

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
