"""The test and benchmark harness: fake upstreams, a fake summariser, generated sessions and a proxy launcher."""
