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
introspection and native access that could reach it (gc, tracing, ctypes, sub-interpreters, code
made under a hidden file's name, another audit hook, `/proc/<pid>/mem|environ|fd`) write a
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
import importlib._bootstrap
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
    hidden: str,
    senders: tuple[types.CodeType, ...],
    compilers: tuple[types.CodeType, ...],
    importers: tuple[types.CodeType, ...],
    helpers: tuple[types.CodeType, ...],
    plugin_globals: dict[str, Any],
) -> None:
    """Install the reporter. Everything it needs is captured here; nothing else references the hook.

    `hidden` is the hidden folder (a path ending in "/"). `senders` are the code objects allowed to
    raise the private event, `compilers` the ones allowed to compile source under the hidden
    folder's name (pytest's assertion rewriter, the sentinels), `importers` the ones whose
    execution of a hidden test module makes its functions the genuine checks (the rewriter's
    exec_module, the sentinels), `helpers` the ones that may execute other hidden modules (importlib).
    A check's test function is accepted only if its code was made by one of those executions.
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
    denied, private = _DENIED, EVENT
    watched = denied | {private, "object.__setattr__", "open", "exec", "compile", "code.__new__"}
    watched |= {"marshal.load", "marshal.loads"}
    tree = hidden[: -len(HIDDEN_DIR) - 1]  # the export, ending in "/": where node ids start
    genuine: dict[types.CodeType, bool] = {}  # code made by executing a hidden module -> a test module's
    executed: set[str] = set()  # hidden files executed once already
    secret_files, exit_status = frozenset({"mem", "environ"}), TAMPERED_EXIT
    function_type, method_type, code_type = types.FunctionType, types.MethodType, types.CodeType
    getattr_, libraries = getattr, _LIBRARIES
    pyc_readers = (_pytest.assertion.rewrite._read_pyc.__code__,)
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

    def caller_code(tid: int, depth: int = 3) -> types.CodeType:
        """The code that raised the event, `depth` frames up (caller_code, guard, hook: 3).

        The hook's own getframe and f_code read are let through."""
        checking.add(tid)
        code: types.CodeType = getframe(depth).f_code
        checking.discard(tid)
        return code

    def code_of(tid: int, thing: object) -> types.CodeType | None:
        """The code of a function or bound method (or the code itself), None for anything else."""
        if type_(thing) is method_type:
            thing = thing.__func__  # type: ignore[attr-defined]
        if type_(thing) is function_type:
            checking.add(tid)
            thing = thing.__code__  # type: ignore[attr-defined]
            checking.discard(tid)
        return thing if type_(thing) is code_type else None  # type: ignore[return-value]

    def code_file(tid: int, thing: object) -> str:
        """The file a function or code object was compiled from ("" for anything else)."""
        code = code_of(tid, thing)
        return "" if code is None else code.co_filename

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

    def record(tid: int, code: types.CodeType) -> None:
        """A hidden module's code is about to run: its functions' code is the genuine checks'."""
        caller = caller_code(tid, 4)  # caller_code, record, guard, hook
        test_module = is_one_of(caller, importers)
        if not test_module and not is_one_of(caller, helpers):
            tampered(f"code of a hidden check was run by {caller.co_name!r}, not by pytest's import")
        if code.co_filename in executed:
            tampered(f"a hidden check file was executed twice ({code.co_filename[-120:]})")
        executed.add(code.co_filename)
        todo = [code]
        while todo and len_(genuine) < 100_000:
            current = todo.pop()
            genuine[current] = test_module
            todo.extend(const for const in current.co_consts if type_(const) is code_type)

    def wrapped(tid: int, function: object) -> object:
        """What a library's decorator (functools.wraps) says it wraps, or None."""
        checking.add(tid)
        attributes: Any = getattr_(function, "__dict__", None)
        checking.discard(tid)
        if type_(attributes) is not dict:
            return None
        for name, value in attributes.items():
            if type_(name) is str and name == "__wrapped__":
                return value
        return None

    def the_check(tid: int, nodeid: object, function: object) -> bool:
        """Whether `function` is the check `nodeid`, compiled from its hidden file (through decorators
        of a library, which are read-only in the sandbox, or of the hidden folder)."""
        if type_(nodeid) is not str:
            return False
        path, _, name = str(nodeid).partition("::")
        name = name.rpartition("::")[2].partition("[")[0]
        for _ in range(8):
            filename = code_file(tid, function)
            code = code_of(tid, function)
            if code is not None and genuine.get(code) is True:
                return filename == tree + path and code.co_name == name
            if not filename.startswith(libraries) and (code is None or genuine.get(code) is None):
                return False
            function = wrapped(tid, function)
        return False

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
        if not 1 <= len_(args) <= 2 or type_(args[0]) is not dict or getpid() != owner:
            tampered("the grader's private event carried something else than its report")
        nodeid = args[0].get("id")
        if len_(args) == 2 and not the_check(tid, nodeid, args[1]):
            shown = nodeid if type_(nodeid) is str else "a check"
            tampered(f"{shown} ran with a test function that is not its hidden check")
        emit(args[0])

    def guard(tid: int, event: str, args: tuple[Any, ...]) -> None:
        if event in denied or event.startswith("ctypes."):
            tampered(f"the code under test used {event}")
        elif event == "object.__setattr__" and type_(args[1]) is str and args[1] == "__code__":
            if code_file(tid, args[0]).startswith(hidden) or code_file(tid, args[2]).startswith(hidden):
                tampered("the code under test replaced the __code__ of a hidden check")
        elif event == "open" and secret_path(args[0]):
            tampered(f"the code under test opened {args[0]!r:.120}")
        elif event == "exec" and type_(args[0]) is code_type and args[0].co_filename.startswith(hidden):
            record(tid, args[0])
        elif event in ("marshal.load", "marshal.loads") and is_one_of(caller_code(tid), pyc_readers):
            tampered("a cached compiled hidden check was offered to pytest's rewriter")
        elif event == "code.__new__" and type_(args[1]) is str and args[1].startswith(hidden):
            tampered(f"a code object was made as if it were a hidden check's ({args[1][-120:]})")
        elif (
            event == "compile"
            and type_(args[1]) is str
            and args[1].startswith(hidden)
            and not is_one_of(caller_code(tid), compilers)
        ):
            tampered(f"code was compiled as if it were a hidden check ({args[1][-120:]})")

    def hook(event: str, args: tuple[Any, ...]) -> None:
        tid = get_ident()
        if tid in busy:
            if tid in checking and (event == "sys._getframe" or event == "object.__getattr__"):
                return
            tampered(f"code ran inside the grader's reporter ({event})")
        if event not in watched and not event.startswith("ctypes."):
            return  # most events (imports, id(), attribute reads): nothing to do, and fast
        busy.add(tid)
        was_enabled = gc_enabled()
        gc_disable()
        try:
            if event == private:
                report(tid, args)
            else:
                guard(tid, event, args)
        except BaseException:  # a bug of the hook's own, or something that was not its own
            tampered(f"the grader's reporter failed on {event}")
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
# The hidden folder, ending in "/", as pytest will name its files: from the working directory (the
# tree), read before any pushed code runs.
_HIDDEN_ROOT = os.path.join(os.getcwd(), HIDDEN_DIR, "")
_TEST_REPORT = _pytest.reports.TestReport
_FUNCTION = _pytest.python.Function
_IS_ASYNC = _pytest.python.is_async_function
_ASYNC_FAIL = _pytest.python.async_fail
_RETURN_NOT_NONE = _pytest.python.PytestReturnNotNoneWarning
_WARN = warnings.warn
_AUDIT = sys.audit
_LIBRARIES = tuple(sorted({os.path.join(p, "") for p in (sys.prefix, sys.base_prefix, sys.exec_prefix)}))
# The sentinel modules: (file name in the hidden folder, source).
_SENTINELS: tuple[tuple[str, str], ...] = tuple((s["name"], s["source"]) for s in _CONFIG["sentinels"])


class _SentinelModule(pytest.Module):
    """A check module compiled from source the harness sent: in memory, never on disk."""

    def _getobj(self) -> types.ModuleType:
        source = dict(_SENTINELS)[self.path.name]
        module = types.ModuleType(self.path.stem)
        module.__file__ = str(self.path)
        exec(compile(source, str(self.path), "exec"), module.__dict__)
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
        modules = [item.getparent(pytest.Module) for item in items]
        folder = modules[0].parent if modules and modules[0] is not None else None
        for name, _ in _SENTINELS:
            module = _SentinelModule.from_parent(folder or session, path=Path(_HIDDEN_ROOT, name))
            checks = [item for item in module.collect() if isinstance(item, pytest.Item)]
            bounds = [
                i for i in range(len(items) + 1) if i in (0, len(items)) or modules[i] is not modules[i - 1]
            ]
            at = bounds[secrets.randbelow(len(bounds))]
            items[at:at] = checks
            modules[at:at] = [module] * len(checks)

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
        """Call the collected test function here (as pytest's own call does), and say whether it raised.

        The audit hook checks the function is the hidden check's own before it accepts the event.
        """
        nodeid = pyfuncitem.nodeid
        function = self.functions.get(nodeid) if self.items.get(nodeid) is pyfuncitem else None
        if function is None:
            _AUDIT(EVENT, {"e": "tampered", "why": f"{nodeid} ran but was never collected as it is"})
            os._exit(TAMPERED_EXIT)
        try:
            if _IS_ASYNC(function):
                _ASYNC_FAIL(nodeid)
            funcargs = pyfuncitem.funcargs
            result = function(**{arg: funcargs[arg] for arg in pyfuncitem._fixtureinfo.argnames})
            if hasattr(result, "__await__") or hasattr(result, "__aiter__"):
                _ASYNC_FAIL(nodeid)
            elif result is not None:
                returned = f"Test functions should return None, but {nodeid} returned {type(result)!r}."
                _WARN(_RETURN_NOT_NONE(returned))
        except BaseException:
            _AUDIT(EVENT, {"e": "ran", "id": nodeid, "raised": True}, function)
            raise
        _AUDIT(EVENT, {"e": "ran", "id": nodeid, "raised": False}, function)
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
    _HIDDEN_ROOT,
    _codes(
        Grader.pytest_sessionstart,
        Grader.pytest_collectreport,
        Grader.pytest_collection_finish,
        Grader.pytest_pyfunc_call,
        Grader.pytest_runtest_logreport,
        Grader.pytest_sessionfinish,
    ),
    _codes(_pytest.assertion.rewrite._rewrite_test, _SentinelModule._getobj, ast.parse),  # ast.parse: no code
    _codes(_pytest.assertion.rewrite.AssertionRewritingHook.exec_module, _SentinelModule._getobj),
    _codes(importlib._bootstrap._call_with_frames_removed),  # type: ignore[attr-defined]
    globals(),
)
