"""The demo: a generated agent session, a fake upstream, and a proxy run that shows the plugin at work."""
