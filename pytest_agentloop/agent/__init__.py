"""The agent side of an attempt: tools, tool-call parsing, the loop, and the pseudo-agents."""
