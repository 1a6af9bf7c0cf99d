"""pytest-agentloop: evaluate LLMs as autonomous coding agents, one canary at a time."""

from importlib.metadata import PackageNotFoundError, version

# Here rather than in canary.py, so the plugin can match files without importing pydantic.
CANARY_FILE = "canary.toml"

try:
    __version__ = version("pytest-agentloop")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"
