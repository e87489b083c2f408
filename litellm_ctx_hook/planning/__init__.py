"""Planning what may change (pinned head and tail, atoms) and the cheapest tiers of edits that fit."""
