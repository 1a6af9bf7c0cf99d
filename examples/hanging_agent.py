"""An external agent that never finishes: the harness must kill it at the canary's time budget.

It starts a child that sleeps too, so the kill has a process group to clean up, then waits. The
attempt is reported as `budget_exceeded` with limit `time` (tests/test_external_agent.py).

    [agents.hang]
    command = "python $AGENTLOOP_ROOT/examples/hanging_agent.py"
"""

from __future__ import annotations

import subprocess
import sys
import time

CHILD = "import time\nfor _ in range(3600):\n    time.sleep(1)\n"

if __name__ == "__main__":
    subprocess.Popen([sys.executable, "-c", CHILD])
    print("thinking...", flush=True)
    for _ in range(3600):  # bounded: an hour at most even if nobody kills it
        time.sleep(1)
