"""The LiteLLM-facing layer: the proxy hook, its metrics, shared statistics and health checks."""
