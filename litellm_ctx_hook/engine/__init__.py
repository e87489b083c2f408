"""The context engine: one request's path from analysis through plan, edits and verification."""
