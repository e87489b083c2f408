"""Condensing a span of history: with a summariser model through LiteLLM, or locally."""
