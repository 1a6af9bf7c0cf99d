"""The embedded llama.cpp server in a process of its own (`python -m` this module).

Started once per run and model settings by the first pytest process that needs it (embedded.SharedServer),
so xdist workers share one server with a slot each instead of each starting its own and fighting over
the cores. It writes its URL to the ready file once listening, and stops on SIGTERM, or by itself once
no process listed in the state file is alive (workers killed with SIGKILL leave no orphan server).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import time
from pathlib import Path
from typing import Any

import psutil  # type: ignore[import-untyped,unused-ignore]

WATCH_EVERY_S = 2.0  # how often the server checks that someone still uses it


def users_alive(state: Path) -> bool:
    """True while the state file lists a live process (or cannot be read: not this server's call)."""
    try:
        users = json.loads(state.read_text()).get("users", [])
    except (OSError, ValueError):
        return True
    return any(psutil.pid_exists(int(str(user).split(":")[0])) for user in users)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--alias", required=True)
    parser.add_argument("--ctx", type=int, required=True, help="context of the whole server (all slots)")
    parser.add_argument("--parallel", type=int, required=True)
    parser.add_argument("--threads", type=int, required=True)
    parser.add_argument("--ready", type=Path, required=True)
    parser.add_argument("--state", type=Path, required=True)
    options = parser.parse_args()
    import xllamacpp

    params = xllamacpp.CommonParams()
    params.model.path = options.model
    params.model_alias = {options.alias}  # so /v1/models answers with the name the user typed
    params.n_ctx = options.ctx
    params.n_parallel = options.parallel  # one slot per worker that shares this server
    params.cpuparams.n_threads = options.threads
    params.cpuparams_batch.n_threads = options.threads
    params.hostnames = ["127.0.0.1"]
    params.port = 0
    params.use_jinja = True
    params.verbosity = 0  # llama.cpp's log threshold: 0 keeps its per-request stderr lines quiet
    server: Any = xllamacpp.Server(params)
    tmp = options.ready.with_suffix(".tmp")
    tmp.write_text(json.dumps({"url": f"{server.listening_address}/v1", "pid": os.getpid()}))
    tmp.replace(options.ready)
    stop = False

    def on_signal(*_: Any) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    while not stop and users_alive(options.state):
        time.sleep(WATCH_EVERY_S)
    server = None  # xllamacpp stops the server when the last reference goes


if __name__ == "__main__":
    main()
