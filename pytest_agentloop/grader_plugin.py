"""The grader's pytest plugin: runs inside the grading sandbox and reports every check to the harness.

Loaded with `-p` before any test module (so before any pushed code), it reads its configuration
from an inherited pipe and closes it: a secret key, the number of the result channel (a second
inherited pipe the harness reads while the checks run) and the sources of this run's sentinel
checks. Then it installs a PEP 578 audit hook that is the only writer of the channel: the key, the
channel and the sequence counter live in the hook's closure and nowhere else, and every line it
writes is numbered and chained with HMAC-SHA256, so the harness rejects any line it did not write.

The plugin's pytest hooks hand each event to the hook with a private `sys.audit` event; the hook
accepts it only from the plugin's own code, and builds nothing from what the caller could fake:
reports are checked against pytest's own call chain and the items collected, and the test function
is called here, so whether it raised is recorded first-hand. The hook also guards the process: the
introspection and native access that could reach it (gc, frames of generators, tracing, ctypes,
sub-interpreters, code objects, another audit hook, `/proc/<pid>/mem|environ|fd`) write a
`tampered` line and end the process. Sentinel checks of known result are built in memory, never on
disk, and placed at random module boundaries among the real checks.

Standard library and pytest only: the harness copies this file beside the checks as
`agentloop_grader.py`; it is never imported from the harness's package inside the sandbox.
"""

from __future__ import annotations

import _hashlib
import _json
import _thread
import ast
import ctypes
import gc
import json
import os
import secrets
import sys
import types
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import _pytest.assertion.rewrite
import _pytest.main
import _pytest.python
import _pytest.reports
import _pytest.runner
import pluggy
import pytest

HIDDEN_DIR = ".agentloop_hidden"
CONFIG_ENV = "AGENTLOOP_GRADER_CONFIG"  # the number of the inherited config pipe (read, then closed)
EVENT = "agentloop.grader"  # the private audit event the plugin's hooks report through
TAMPERED_EXIT = 86  # the status a process ends with when the hook caught it tampering
_TEXT_CAP = 3000  # characters of a failure's traceback sent to the harness
_CHAIN_DEPTH = 200  # frames walked to find pytest's run loop above a report
_PR_SET_DUMPABLE = 4
# Distributions pytest itself loads; never the canary's dependencies.
_PYTEST_OWN = {
    "pytest",
    "pluggy",
    "iniconfig",
    "packaging",
    "pygments",
    "exceptiongroup",
    "tomli",
    "colorama",
}

# What a fake grade would replace: the run loop, the report factory, the call wrapper, the hook caller.
_WATCHED: tuple[tuple[object, str], ...] = (
    (_pytest.runner, "runtestprotocol"),
    (_pytest.runner, "call_and_report"),
    (_pytest.runner, "call_runtest_hook"),
    (_pytest.runner, "check_interactive_exception"),
    (_pytest.runner, "pytest_runtest_protocol"),
    (_pytest.runner, "pytest_runtest_makereport"),
    (_pytest.runner.CallInfo, "from_call"),
    (_pytest.reports.TestReport, "from_item_and_call"),
    (_pytest.reports.TestReport, "__init__"),
    (_pytest.reports.BaseReport, "passed"),
    (_pytest.reports.BaseReport, "failed"),
    (_pytest.reports.BaseReport, "skipped"),
    (_pytest.python, "pytest_pyfunc_call"),
    (_pytest.python.Function, "runtest"),
    (_pytest.python.Function, "obj"),
    (_pytest.main, "pytest_runtestloop"),
    (pluggy.HookCaller, "__call__"),
    (pluggy.PluginManager, "register"),
    (pluggy.PluginManager, "_hookexec"),
    (pluggy.HookImpl, "__init__"),
    (os, "write"),
)
# The hooks whose implementations decide a check's outcome: none may be replaced during the run.
_DECIDING_HOOKS = (
    "pytest_runtest_protocol",
    "pytest_runtest_setup",
    "pytest_runtest_call",
    "pytest_runtest_teardown",
    "pytest_runtest_makereport",
    "pytest_runtest_logreport",
    "pytest_pyfunc_call",
)
# Audit events nobody's checks need and a forger does: each one is denied as tampering.
_DENIED = frozenset(
    {
        "gc.get_objects",
        "gc.get_referrers",
        "gc.get_referents",
        "sys.settrace",
        "sys.setprofile",
        "sys._current_frames",
        "sys.addaudithook",
        "cpython.PyInterpreterState_New",
    }
)
_HIDDEN_ATTRS = frozenset({"gi_frame", "cr_frame", "ag_frame"})  # frames of suspended generators


def _name(owner: object, attr: str) -> str:
    if isinstance(owner, type):
        return f"{owner.__module__}.{owner.__qualname__}.{attr}"
    return f"{getattr(owner, '__name__', owner)}.{attr}"


def _snapshot() -> dict[str, object]:
    return {_name(owner, attr): vars(owner).get(attr) for owner, attr in _WATCHED}


def _read_config() -> dict[str, Any]:
    """The harness's configuration, read whole from the inherited pipe, which is then closed."""
    fd = int(os.environ.pop(CONFIG_ENV))
    chunks = []
    while chunk := os.read(fd, 65536):
        chunks.append(chunk)
    os.close(fd)
    config: dict[str, Any] = json.loads(b"".join(chunks))
    return config


def _codes(*functions: Callable[..., object]) -> tuple[types.CodeType, ...]:
    return tuple(f.__code__ for f in functions)


def _unencodable(thing: object) -> object:
    raise TypeError(f"the grader does not send {type(thing).__name__} values")


def _not_dumpable() -> None:
    """Out of reach of the checks' child processes: no ptrace, no /proc/<pid>/mem, no process_vm_readv."""
    ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_DUMPABLE, 0, 0, 0, 0)


def _install(
    key: bytes,
    fd: int,
    senders: tuple[types.CodeType, ...],
    compilers: tuple[types.CodeType, ...],
    plugin_globals: dict[str, Any],
) -> None:
    """Install the reporter. Everything it needs is captured here; nothing else references the hook.

    `senders` are the code objects allowed to raise the private event, `compilers` the ones allowed
    to compile source under the hidden folder's name (pytest's assertion rewriter, the sentinels).
    The hook calls nothing pushed code could replace (only functions and constants captured here,
    and methods of built-in types), and it never raises: a frame of it in a traceback would hand
    its closure to whoever caught the exception. Denying is ending the process.
    """
    mac = _hashlib.hmac_new(key, digestmod="sha256")
    encode = _json.make_encoder(
        None, _unencodable, _json.encode_basestring_ascii, None, ":", ",", False, False, False
    )
    write, exit_now, getpid, get_ident = os.write, os._exit, os.getpid, _thread.get_ident
    getframe, join, zip_, len_, type_ = sys._getframe, "".join, zip, len, type
    gc_enabled, gc_disable, gc_enable = gc.isenabled, gc.disable, gc.enable
    denied, hidden_attrs, private, hidden = _DENIED, _HIDDEN_ATTRS, EVENT, f"/{HIDDEN_DIR}/"
    secret_files, exit_status = frozenset({"mem", "environ"}), TAMPERED_EXIT
    function_type, code_type = types.FunctionType, types.CodeType
    owner = getpid()
    state: list[Any] = [0, bytes(32)]  # sequence number of the next line, MAC of the previous one
    pinned = tuple(plugin_globals.items())  # the plugin as it was before any pushed code ran
    busy: set[int] = set()  # threads inside the hook
    checking: set[int] = set()  # threads inside the hook's own frame check

    def emit(event: dict[str, Any]) -> None:
        event["n"] = state[0]
        line = join(encode(event, 0)).encode()
        link = mac.copy()
        link.update(state[1])
        link.update(line)
        state[1] = link.digest()
        state[0] += 1
        data = line + b" " + state[1].hex().encode() + b"\n"
        while data:
            data = data[write(fd, data) :]

    def tampered(why: str) -> None:
        """Say so on the channel and end the process: no exception (and no frame of this hook) escapes."""
        if getpid() == owner:
            emit({"e": "tampered", "why": why[:300]})
        exit_now(exit_status)

    def is_one_of(code: object, codes: tuple[types.CodeType, ...]) -> bool:
        """Identity, not equality: `in` would compare code objects by content (and `id` is audited)."""
        for candidate in codes:  # noqa: SIM110 (a generator expression is code too: keep it flat)
            if candidate is code:
                return True
        return False

    def caller_code(tid: int) -> types.CodeType:
        """The code that raised the event (the hook's own getframe and f_code read are let through)."""
        checking.add(tid)
        code: types.CodeType = getframe(3).f_code  # caller_code, guard, hook, the raiser
        checking.discard(tid)
        return code

    def code_file(tid: int, thing: object) -> str:
        """The file a function or code object was compiled from ("" for anything else)."""
        if type_(thing) is function_type:
            checking.add(tid)
            thing = thing.__code__  # type: ignore[attr-defined]
            checking.discard(tid)
        return thing.co_filename if type_(thing) is code_type else ""  # type: ignore[attr-defined]

    def secret_path(path: object) -> bool:
        """A path that may name a process's memory, environment or fds (literally: also via dir_fd)."""
        if type_(path) is bytes:
            path = path.decode("utf-8", "surrogateescape")  # type: ignore[attr-defined]
        if type_(path) is not str:
            return False
        parts = [part for part in path.split("/") if part not in ("", ".")]  # type: ignore[attr-defined]
        if not parts:
            return False
        name, parent = parts[-1], parts[-2] if len_(parts) > 1 else ""
        return name in secret_files or (parent in ("fd", "fdinfo") and name.isdigit())

    def report(tid: int, args: tuple[Any, ...]) -> None:
        checking.add(tid)
        caller = getframe(2)
        code, namespace = caller.f_code, caller.f_globals
        checking.discard(tid)
        if not is_one_of(code, senders) or namespace is not plugin_globals:
            tampered(f"the grader's private event was raised by {code.co_name!r}, not by the grader")
        if len_(namespace) < len_(pinned):
            tampered("the grader's own globals were deleted")
        for (name, value), (now, current) in zip_(pinned, namespace.items()):
            if now is not name or current is not value:
                tampered(f"the grader's own {name} was replaced")
        if len_(args) != 1 or type_(args[0]) is not dict or getpid() != owner:
            tampered("the grader's private event carried something else than its report")
        emit(args[0])

    def guard(tid: int, event: str, args: tuple[Any, ...]) -> None:
        if event in denied or event.startswith("ctypes."):
            tampered(f"the code under test used {event}")
        elif event == "object.__getattr__" and type_(args[1]) is str and args[1] in hidden_attrs:
            tampered(f"the code under test read a generator's {args[1]}")
        elif event == "object.__setattr__" and type_(args[1]) is str and args[1] == "__code__":
            if hidden in code_file(tid, args[0]) or hidden in code_file(tid, args[2]):
                tampered("the code under test replaced the __code__ of a hidden check")
        elif event == "open" and secret_path(args[0]):
            tampered(f"the code under test opened {args[0]!r:.120}")
        elif event == "code.__new__" and type_(args[1]) is str and hidden in args[1]:
            tampered(f"a code object was made as if it were a hidden check's ({args[1][-120:]})")
        elif (
            event == "compile"
            and type_(args[1]) is str
            and hidden in args[1]
            and not is_one_of(caller_code(tid), compilers)
        ):
            tampered(f"code was compiled as if it were a hidden check ({args[1][-120:]})")

    def hook(event: str, args: tuple[Any, ...]) -> None:
        tid = get_ident()
        if tid in busy:
            if tid in checking and (event == "sys._getframe" or event == "object.__getattr__"):
                return
            tampered(f"code ran inside the grader's reporter ({event})")
        busy.add(tid)
        was_enabled = gc_enabled()
        gc_disable()
        try:
            if event == private:
                report(tid, args)
            else:
                guard(tid, event, args)
        except BaseException as exc:  # a bug of the hook's own, or something that was not its own
            tampered(f"the grader's reporter failed on {event}: {type_(exc).__name__}")
        finally:
            busy.discard(tid)
            if was_enabled:
                gc_enable()

    sys.addaudithook(hook)


_CONFIG = _read_config()
_not_dumpable()
os.set_inheritable(int(_CONFIG["channel"]), False)
_ORIGINALS = tuple(_snapshot().items())
_MODULES_AT_START = frozenset(sys.modules)
_CALL_AND_REPORT = _pytest.runner.call_and_report.__code__
_RUNTESTLOOP = _pytest.main.pytest_runtestloop.__code__
_REWRITE = _pytest.assertion.rewrite._rewrite_test.__code__
_TEST_REPORT = _pytest.reports.TestReport
_FUNCTION = _pytest.python.Function
_IS_ASYNC = _pytest.python.is_async_function
_ASYNC_FAIL = _pytest.python.async_fail
_RETURN_NOT_NONE = _pytest.python.PytestReturnNotNoneWarning
_WARN = warnings.warn
_AUDIT = sys.audit
_LIBRARIES = tuple(sorted({os.path.join(p, "") for p in (sys.prefix, sys.base_prefix, sys.exec_prefix)}))
_SENTINELS: tuple[tuple[str, str], ...] = tuple((s["path"], s["source"]) for s in _CONFIG["sentinels"])


class _SentinelModule(pytest.Module):
    """A check module compiled from source the harness sent: in memory, never on disk."""

    source = ""

    def _getobj(self) -> types.ModuleType:
        module = types.ModuleType(self.path.stem)
        module.__file__ = str(self.path)
        exec(compile(self.source, str(self.path), "exec"), module.__dict__)
        return module


class Grader:
    """The hooks; an instance is registered so the harness can also find it by name.

    Each hook that reports raises the private event itself: the audit hook accepts it only from
    these functions' code, so pushed code can call them, but never make them say something else.
    """

    def __init__(self) -> None:
        self.plugins_at_start: set[int] = set()
        self.items: dict[str, pytest.Item] = {}
        self.functions: dict[str, Callable[..., object]] = {}  # the test function of each plain check
        self.runtests: dict[str, object] = {}
        self.hookimpls: dict[str, list[tuple[object, object]]] = {}

    @pytest.hookimpl(trylast=True)
    def pytest_sessionstart(self, session: pytest.Session) -> None:
        self.plugins_at_start = {id(p) for p in session.config.pluginmanager.get_plugins()}
        _AUDIT(EVENT, {"e": "hello", "pid": os.getpid()})

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        if report.failed:
            text = str(report.longrepr).strip() or "collection failed"
            message = text.splitlines()[-1][:300]
            _AUDIT(
                EVENT, {"e": "collect_error", "id": report.nodeid, "msg": message, "text": text[-_TEXT_CAP:]}
            )

    @pytest.hookimpl(trylast=True)
    def pytest_collection_modifyitems(self, session: pytest.Session, items: list[pytest.Item]) -> None:
        """Place each sentinel module at a random boundary between modules (their fixtures are unaffected)."""
        folder = items[0].parent.parent if items and items[0].parent is not None else None
        for path, source in _SENTINELS:
            module = _SentinelModule.from_parent(folder or session, path=Path(session.config.rootpath, path))
            module.source = source
            checks = [item for item in module.collect() if isinstance(item, pytest.Item)]
            bounds = [
                i
                for i in range(len(items) + 1)
                if i in (0, len(items)) or items[i].parent is not items[i - 1].parent
            ]
            at = bounds[secrets.randbelow(len(bounds))]
            items[at:at] = checks

    @pytest.hookimpl(trylast=True)
    def pytest_collection_finish(self, session: pytest.Session) -> None:
        for item in session.items:
            self.items[item.nodeid] = item
            self.runtests[item.nodeid] = type(item).runtest
            if type(item) is _FUNCTION:
                self.functions[item.nodeid] = item.obj
        hooks = session.config.hook
        self.hookimpls = {name: _impls(getattr(hooks, name)) for name in _DECIDING_HOOKS}
        _AUDIT(EVENT, {"e": "collected", "ids": list(self.items), "functions": list(self.functions)})

    @pytest.hookimpl(tryfirst=True)
    def pytest_pyfunc_call(self, pyfuncitem: pytest.Function) -> bool:
        """Call the collected test function here (as pytest's own call does), and say whether it raised."""
        nodeid = pyfuncitem.nodeid
        function = self.functions.get(nodeid)
        why = (
            _not_a_check(function, pyfuncitem) if self.items.get(nodeid) is pyfuncitem else "never collected"
        )
        if why is not None:
            _AUDIT(EVENT, {"e": "tampered", "why": f"{nodeid} ran with a test function {why}"})
            os._exit(TAMPERED_EXIT)
        assert function is not None
        try:
            if _IS_ASYNC(function):
                _ASYNC_FAIL(nodeid)
            funcargs = pyfuncitem.funcargs
            result = function(**{arg: funcargs[arg] for arg in pyfuncitem._fixtureinfo.argnames})
            if hasattr(result, "__await__") or hasattr(result, "__aiter__"):
                _ASYNC_FAIL(nodeid)
            elif result is not None:
                _WARN(
                    _RETURN_NOT_NONE(
                        f"Test functions should return None, but {nodeid} returned {type(result)!r}."
                    )
                )
        except BaseException:
            _AUDIT(EVENT, {"e": "ran", "id": nodeid, "raised": True})
            raise
        _AUDIT(EVENT, {"e": "ran", "id": nodeid, "raised": False})
        return True

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        why = self._integrity(report)
        if why is not None:
            _AUDIT(EVENT, {"e": "tampered", "why": why})
            os._exit(TAMPERED_EXIT)
        _AUDIT(
            EVENT,
            {
                "e": "report",
                "id": str(report.nodeid),
                "when": str(report.when),
                "outcome": str(report.outcome),
                "xfail": hasattr(report, "wasxfail"),
                "text": str(report.longrepr)[-_TEXT_CAP:] if report.failed else "",
            },
        )

    def _integrity(self, report: pytest.TestReport) -> str | None:
        """Why this report cannot be pytest's own report of a collected check, or None."""
        patched = _patched()
        if patched:
            return f"pytest internals were replaced during the run: {', '.join(patched)}"
        item = self.items.get(report.nodeid)
        if type(report) is not _TEST_REPORT or item is None:
            return f"a report for {report.nodeid} that pytest did not make for a collected check"
        if "runtest" in vars(item) or type(item).runtest is not self.runtests[report.nodeid]:
            return f"the runtest of {report.nodeid} was replaced"
        if report.nodeid in self.functions and vars(item).get("_obj") is not self.functions[report.nodeid]:
            return f"the test function of {report.nodeid} was replaced"
        hooks = item.config.hook
        changed = [name for name in _DECIDING_HOOKS if _impls(getattr(hooks, name)) != self.hookimpls[name]]
        if changed:
            return f"pytest hook implementations were changed during the run: {', '.join(changed)}"
        return _delivered_by_pytest(report, item)

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        finish = {
            "e": "finish",
            "status": int(exitstatus),
            "patched": _patched(),
            "plugins": self._foreign_plugins(session),
            "imports": _environment_imports(),
        }
        _AUDIT(EVENT, finish)

    def _foreign_plugins(self, session: pytest.Session) -> list[str]:
        """Plugins registered after the session started that are not conftest files of the checks."""
        foreign = []
        for plugin in session.config.pluginmanager.get_plugins():
            if id(plugin) in self.plugins_at_start or _is_hidden_conftest(plugin, session):
                continue
            foreign.append(session.config.pluginmanager.get_name(plugin) or repr(plugin)[:80])
        return foreign


def _impls(caller: pluggy.HookCaller) -> list[tuple[object, object]]:
    return [(impl, impl.function) for impl in caller.get_hookimpls()]


def _patched() -> list[str]:
    now = _snapshot()
    return [name for name, original in _ORIGINALS if now.get(name) is not original]


def _not_a_check(function: object, item: pytest.Function) -> str | None:
    """Why `function` is not the check's own (or a library's decorator around it), or None.

    A function written by the pushed code lives in the pushed tree: it is never a check.
    """
    code = getattr(function, "__code__", None)
    if not isinstance(code, types.CodeType):
        return "that is not a Python function"
    filename = code.co_filename
    if filename == str(item.path) or filename.startswith(_LIBRARIES):
        return None
    return f"from {filename}"


def _delivered_by_pytest(report: pytest.TestReport, item: pytest.Item) -> str | None:
    """None when pytest's own call_and_report, inside its run loop, made this report for this item."""
    frame = sys._getframe(1)
    for _ in range(_CHAIN_DEPTH):
        frame = frame.f_back  # type: ignore[assignment]
        if frame is None:
            break
        if frame.f_code is _CALL_AND_REPORT:
            local = frame.f_locals
            call = local.get("call")
            if local.get("report") is not report or local.get("item") is not item:
                break
            excinfo = getattr(call, "excinfo", None)
            if report.when == "call" and report.passed and excinfo is not None:
                return f"{report.nodeid} raised {excinfo.typename} but was reported passed"
            while frame is not None and frame.f_code is not _RUNTESTLOOP:
                frame = frame.f_back  # type: ignore[assignment]
            return None if frame is not None else f"{report.nodeid} was run outside pytest's run loop"
    return f"the report of {report.nodeid} did not come from pytest's call_and_report"


def _is_hidden_conftest(plugin: object, session: pytest.Session) -> bool:
    path = getattr(plugin, "__file__", None)
    if not path or os.path.basename(path) != "conftest.py":
        return False
    confcutdir = session.config.getoption("confcutdir")
    return bool(confcutdir) and os.path.realpath(path).startswith(os.path.realpath(confcutdir) + os.sep)


def _environment_imports() -> list[str]:
    """Installed distributions (site-packages) the run imported, beyond pytest's own."""
    from importlib.metadata import packages_distributions

    owners = packages_distributions()
    found = set()
    for name in set(sys.modules) - _MODULES_AT_START:
        module = sys.modules.get(name)
        path = getattr(module, "__file__", None) or ""
        if "site-packages" not in path and "dist-packages" not in path:
            continue
        for dist in owners.get(name.partition(".")[0], [name.partition(".")[0]]):
            if dist.lower() not in _PYTEST_OWN:
                found.add(dist)
    return sorted(found)


def pytest_configure(config: pytest.Config) -> None:
    config.pluginmanager.register(Grader(), "agentloop-grader")


_install(
    bytes.fromhex(_CONFIG.pop("key")),
    int(_CONFIG["channel"]),
    _codes(
        Grader.pytest_sessionstart,
        Grader.pytest_collectreport,
        Grader.pytest_collection_finish,
        Grader.pytest_pyfunc_call,
        Grader.pytest_runtest_logreport,
        Grader.pytest_sessionfinish,
    ),
    _codes(_pytest.assertion.rewrite._rewrite_test, _SentinelModule._getobj, ast.parse),  # ast.parse: no code
    globals(),
)
