"""The pytest face of pytest-agentloop (options, collection, reports). Being built."""
