"""The local extractive condenser and its scoring of lines and words."""
