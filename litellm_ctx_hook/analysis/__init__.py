"""Counting a request's tokens for its model, its window and its risk level."""
