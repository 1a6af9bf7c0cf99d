"""The `agentloop` console script: look at results after the run, from a results file or the store.

    agentloop report SOURCE... [--run ID] [--html PATH] [--cards DIR]  rebuild summary, HTML, cards
    agentloop view SOURCE... [-o PATH] [--store URL]                   one HTML file to explore a run
    agentloop compare A B [--model M]                                  two runs side by side, per model
    agentloop compare SOURCE --models M1 M2                            two models of one run
    agentloop history MODEL --store URL                                a model's pass rate over time
    agentloop fit MODEL ...                                            will it fit in memory?
    agentloop validate canaries/                                       are these canaries sound?

SOURCE is a results file (--agent-json) or a store URL (sqlite:///..., postgresql://...); a store
URL may end in `#RUN_ID` (or `report --run ID`) to pick a run (default: the latest): every CI shard
that ran with that `--agent-run-id` is in it, each attempt once. A results file whose run was killed
is compacted from its journal first.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pytest_agentloop.analysis.stats import compare_attempts, wilson
from pytest_agentloop.analysis.verdicts import summarize
from pytest_agentloop.cells import BASELINE
from pytest_agentloop.isolation import ENGINES
from pytest_agentloop.records import Attempt
from pytest_agentloop.report.stack import stack_differences


class CliError(Exception):
    """Something the user must fix; printed as one line."""


class _Out:
    """Just enough of pytest's terminal reporter for the summary and decide writers."""

    def write_sep(self, sep: str, title: str) -> None:
        print(f" {title} ".center(100, sep))

    def write_line(self, line: str, **_: Any) -> None:
        print(line)


def _is_store(source: str) -> bool:
    return source.startswith(("sqlite:///", "postgresql://", "postgres://"))


def load(source: str) -> tuple[str, list[Attempt]]:
    """(label, attempts) of one run, from a results file or `STORE_URL[#RUN_ID]`."""
    label, _, attempts = load_run(source)
    return label, attempts


def load_run(source: str, run: str | None = None) -> tuple[str, dict[str, Any], list[Attempt]]:
    """(label, run section, attempts) of one run, from a results file (compacted from its journal first
    when a killed run left it behind) or `STORE_URL[#RUN_ID]` (`run` when given, else the latest)."""
    if _is_store(source):
        from pytest_agentloop.store import StoreError, open_store

        url, _, run_id = source.partition("#")
        run_id = run or run_id
        try:
            store = open_store(url)
        except StoreError as exc:
            raise CliError(str(exc)) from None
        try:
            runs = store.runs()
            if not runs:
                raise CliError(f"{url}: the store holds no run yet")
            run_id = run_id or runs[-1]["run_id"]
            if run_id not in {r["run_id"] for r in runs}:
                raise CliError(f"{url}: no run {run_id!r}; `agentloop history` lists the runs")
            return f"run {run_id}", store.run_info(run_id), store.attempts(run_id)
        finally:
            store.close()
    from pytest_agentloop.results import compact_journal, journal_beside, load_results

    path = Path(source)
    try:
        compacted = compact_journal(path)
        if compacted is not None:
            print(f"compacted {compacted} attempts from {journal_beside(path)} into {path}", file=sys.stderr)
        info, attempts = load_results(path, transcripts=True)
    except ValueError as exc:
        raise CliError(str(exc)) from None
    return f"{source} ({info.get('started', '?')})", info, attempts


def merged(sources: Sequence[str], run: str | None = None) -> tuple[str, list[Attempt], dict[str, str]]:
    """Several sources as one run: an attempt found twice (a resumed run's file and its store, a CI
    shard's file and the shared store's run) counts once.

    Two different attempts with one identity are two runs of the same thing, not parts of one run:
    pooled, they would count twice and break the pairing by repetition, so they are refused. The
    third value is the machine the (first) run recorded, for the cards' "where it ran".
    """
    from pytest_agentloop.results import attempt_identity

    loaded = [load_run(source, run) for source in sources]
    seen: dict[tuple[Any, ...], tuple[str, Attempt]] = {}
    attempts = []
    for label, _, part in loaded:
        for attempt in part:
            key = attempt_identity(attempt)
            if key not in seen:
                seen[key] = (label, attempt)
                attempts.append(attempt)
            elif seen[key][1].started != attempt.started:
                raise CliError(
                    f"{seen[key][0]} and {label} both hold {' · '.join(map(str, key))}: they are two runs, "
                    "not parts of one; put them side by side with `agentloop compare A B`"
                )
    machine: dict[str, str] = next((run["machine"] for _, run, _ in loaded if run.get("machine")), {})
    return " + ".join(label for label, _, _ in loaded), attempts, machine


def cmd_view(args: argparse.Namespace) -> int:
    from pytest_agentloop.report.view import write_view

    label, attempts, machine = merged(args.sources)
    store_url = args.store or next((s.partition("#")[0] for s in args.sources if _is_store(s)), None)
    runs = _stored_runs(store_url) if store_url else []
    path = write_view(args.output, attempts, _prices(args.config, attempts), label, runs, machine)
    print(f"view: {path} ({path.stat().st_size / 1e6:.1f} MB; open it in a browser, no server needed)")
    return 0


def _stored_runs(url: str) -> list[Any]:
    from pytest_agentloop.report.view import stored_runs
    from pytest_agentloop.store import StoreError, open_store

    try:
        store = open_store(url)
    except StoreError as exc:
        raise CliError(str(exc)) from None
    try:
        return stored_runs(store)
    finally:
        store.close()


def cmd_report(args: argparse.Namespace) -> int:
    from pytest_agentloop.report.decide import write_decide
    from pytest_agentloop.report.terminal import write_summary

    label, attempts, machine = merged(args.sources, args.run_id)
    prices = _prices(args.config, attempts)
    write_summary(_Out(), attempts, None)
    write_decide(_Out(), attempts, prices)
    if args.html:
        from pytest_agentloop.report.html import STYLE, summary_html

        page = f"<!doctype html><meta charset=utf-8><title>agentloop {label}</title>{STYLE}"
        args.html.write_text(page + summary_html(attempts, prices, {}), encoding="utf-8")
        print(f"html: {args.html}")
    if args.cards:
        from pytest_agentloop.report.card import write_cards

        for path in write_cards(args.cards, attempts, machine, prices):
            print(f"card: {path}")
    return 0


def _prices(config: Path | None, attempts: Sequence[Attempt]) -> dict[str, Any]:
    """The run's prices, from the settings file the run used (cost per pass needs them after the fact)."""
    from pytest_agentloop.config import ConfigError, find_config_table
    from pytest_agentloop.tuning import TuningError, prices_from_settings

    try:
        table, _ = find_config_table(Path.cwd(), config)
        return prices_from_settings(table.get("prices", {}), sorted({a.model for a in attempts}))
    except (ConfigError, TuningError) as exc:
        raise CliError(str(exc)) from None


def pooled(attempts: Sequence[Attempt]) -> tuple[int, int]:
    """Passes and N over many canaries, from the per-canary summaries (infra errors excluded)."""
    rows = summarize(attempts)
    return sum(s.passes for s in rows), sum(s.n for s in rows)


def _rate(attempts: Sequence[Attempt]) -> str:
    passes, n = pooled(attempts)
    if not n:
        return "-"
    low, high = wilson(passes, n)
    return f"{passes}/{n} [{low:.2f}, {high:.2f}]"


def compare_lines(
    left: tuple[str, list[Attempt]], right: tuple[str, list[Attempt]], cell: str = BASELINE.id
) -> list[str]:
    """One cell of each side, per canary side by side, then the verdict over the shared canaries.

    Both sides are one model each (the caller splits them): the comparison is unpaired (Boschloo's
    exact test, Newcombe's interval), since repetitions of two runs are independent.
    """
    (left_label, everything_a), (right_label, everything_b) = left, right
    a, b = _cell_of(cell, left_label, everything_a), _cell_of(cell, right_label, everything_b)
    canaries = sorted({x.canary for x in a} | {x.canary for x in b})
    width = max([len("canary"), *map(len, canaries)])
    lines = [
        f"A: {left_label}",
        f"B: {right_label}",
        f"cell: {cell}" + _settings_change(a[0].cell_config, b[0].cell_config),
        f"{'canary':<{width}}  {'A pass/N [95% CI]':<22}  B pass/N [95% CI]",
    ]
    for canary in canaries:
        mine, theirs = [x for x in a if x.canary == canary], [x for x in b if x.canary == canary]
        lines.append(f"{canary:<{width}}  {_rate(mine):<22}  {_rate(theirs)}")
    lines.append(f"{'all':<{width}}  {_rate(a):<22}  {_rate(b)}")
    comparison = compare_attempts(a, b, "B", against="A")
    lines.extend(stack_differences(a, b))  # before the verdict, which stays the block's last line
    lines.append(f"B vs A (unpaired, on the canaries both ran): {comparison.text}")
    return lines


def per_model(
    left: tuple[str, list[Attempt]], right: tuple[str, list[Attempt]], only: str | None
) -> list[tuple[tuple[str, list[Attempt]], tuple[str, list[Attempt]]]]:
    """One (A, B) pair of sides per model both runs hold: attempts of different models never pool."""
    (left_label, a), (right_label, b) = left, right
    models_a, models_b = {x.model for x in a}, {x.model for x in b}
    if only is not None:
        missing = [
            label for label, models in ((left_label, models_a), (right_label, models_b)) if only not in models
        ]
        if missing:
            raise CliError(f"{' and '.join(missing)}: no attempt of model {only!r}")
        shared = [only]
    else:
        shared = sorted(models_a & models_b)
    if not shared:
        held = f"A: {', '.join(sorted(models_a))}; B: {', '.join(sorted(models_b))}"
        raise CliError(
            f"the two runs share no model ({held}); compare two models of one run with --models M1 M2"
        )
    return [
        (
            (f"{left_label} · {model}", [x for x in a if x.model == model]),
            (f"{right_label} · {model}", [x for x in b if x.model == model]),
        )
        for model in shared
    ]


def _cell_of(cell: str, label: str, attempts: list[Attempt]) -> list[Attempt]:
    own = [a for a in attempts if a.cell == cell]
    if not own:
        cells = ", ".join(sorted({a.cell for a in attempts})) or "none"
        raise CliError(
            f"{label} has no attempt in cell {cell!r}; its cells: {cells} (choose one with --cell)"
        )
    return own


def _settings_change(a: dict[str, Any], b: dict[str, Any]) -> str:
    """`` (settings differ: turns 6 -> 12)`` when the same cell id ran with other settings."""
    changed = [
        f"{key} {a.get(key)} -> {b.get(key)}"
        for key in sorted(a.keys() | b.keys())
        if a.get(key) != b.get(key)
    ]
    return f" (settings differ: {', '.join(changed)})" if changed else " (same settings)"


def cmd_compare(args: argparse.Namespace) -> int:
    if args.models:
        label, attempts = load(args.sources[0])
        sides = [(f"{m} in {label}", [a for a in attempts if a.model == m]) for m in args.models]
        for (side, own), model in zip(sides, args.models, strict=True):
            if not own:
                raise CliError(f"{side}: no attempt of model {model!r}")
        print("\n".join(compare_lines(sides[0], sides[1], args.cell)))
        return 0
    if len(args.sources) != 2:
        raise CliError("compare needs two sources (A B), or one source and --models M1 M2")
    left, right = (load(source) for source in args.sources)
    blocks = [compare_lines(a, b, args.cell) for a, b in per_model(left, right, args.model)]
    print("\n\n".join("\n".join(block) for block in blocks))
    unmatched = sorted({x.model for x in left[1]} ^ {x.model for x in right[1]})
    if unmatched and args.model is None:
        print(f"\nnot compared (in one run only): {', '.join(unmatched)}")
    return 0


def cmd_history(args: argparse.Namespace) -> int:
    from pytest_agentloop.store import StoreError, open_store

    try:
        store = open_store(args.store)
    except StoreError as exc:
        raise CliError(str(exc)) from None
    try:
        per_run = [(run, store.attempts(run["run_id"], model=args.model)) for run in store.runs()]
    finally:
        store.close()
    per_run = [(run, own) for run, own in per_run if own]
    if not per_run:
        raise CliError(
            f"no attempt of model {args.model!r} in {args.store}; check the spelling with `agentloop report`"
        )
    print(f"{args.model}: pass rate per run (infra errors excluded)")
    print(f"{'started':<25}  {'run':<12}  {'pass/N':>7}  {'95% CI':<12}  harness")
    for run, own in per_run:
        passes, n = pooled(own)
        low, high = wilson(passes, n)
        print(
            f"{str(run['started'])[:25]:<25}  {run['run_id']:<12}  {passes:>3}/{n:<3}  "
            f"[{low:.2f}, {high:.2f}]  {run['harness_version']} {str(run['harness_commit'] or '')[:10]}"
        )
    return 0


def cmd_validate(args: argparse.Namespace) -> int:
    from pytest_agentloop.sandbox import SandboxPolicy
    from pytest_agentloop.validate import validate_paths

    return validate_paths(args.paths, SandboxPolicy(engine=args.engine), print)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="agentloop", description="Look at agentloop results after the run.")
    commands = parser.add_subparsers(dest="command", required=True)
    report = commands.add_parser("report", help="a run's summary, HTML, cards; or merge runs")
    report.add_argument(
        "sources",
        nargs="+",
        help="results files or store URL[#RUN_ID]; several are merged (e.g. one per CI job or host)",
    )
    report.add_argument(
        "--run",
        dest="run_id",
        metavar="ID",
        help="the run to read from a store (default: the latest): every CI shard that ran with that "
        "--agent-run-id, each attempt once",
    )
    report.add_argument("--html", type=Path, help="write a standalone HTML verdict here")
    report.add_argument("--cards", type=Path, help="write one finding card per model into this folder")
    report.add_argument(
        "--config",
        type=Path,
        help="settings file whose [prices] give cost per pass (default: agentloop.toml or "
        "[tool.agentloop] of pyproject.toml here)",
    )
    report.set_defaults(run=cmd_report)
    view = commands.add_parser(
        "view", help="one self-contained HTML file to explore a run (and the store's history)"
    )
    view.add_argument("sources", nargs="+", help="results files or store URL[#RUN_ID]; several are merged")
    view.add_argument(
        "-o",
        "--output",
        type=Path,
        default=Path("agentloop-view.html"),
        help="where (default: agentloop-view.html)",
    )
    view.add_argument(
        "--store", help="store URL whose runs give each model's history (default: a store source)"
    )
    view.add_argument("--config", type=Path, help="settings file whose [prices] give cost per pass")
    view.set_defaults(run=cmd_view)
    compare = commands.add_parser("compare", help="two runs, or two models of one run, side by side")
    compare.add_argument("sources", nargs="+", help="A B (results files or store URL#RUN_ID), or one source")
    compare.add_argument("--models", nargs=2, metavar=("M1", "M2"), help="compare two models of one source")
    compare.add_argument(
        "--model", help="compare only this model of A and B (default: one comparison per model both ran)"
    )
    compare.add_argument(
        "--cell", default=BASELINE.id, help="the cell compared on both sides (default: baseline)"
    )
    compare.set_defaults(run=cmd_compare)
    history = commands.add_parser("history", help="a model's pass rate run by run")
    history.add_argument("model", help="model spec as run, e.g. ollama:qwen3:30b")
    history.add_argument("--store", default="sqlite:///.agentloop/results.db", help="store URL")
    history.set_defaults(run=cmd_history)
    validate = commands.add_parser(
        "validate", help="check canaries: reference passes, null and the untouched push fail, layout rules"
    )
    validate.add_argument("paths", nargs="+", type=Path, help="canary folders, or folders holding canaries")
    validate.add_argument(
        "--engine", choices=ENGINES, default="bwrap", help="sandbox engine for the runs (default: bwrap)"
    )
    validate.set_defaults(run=cmd_validate)
    fit = commands.add_parser(
        "fit", help="will a GGUF model fit in memory? (agentloop fit --help)", add_help=False
    )
    fit.set_defaults(run=None)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["fit"]:
        from pytest_agentloop.fit import fit_command

        return fit_command(argv[1:])
    args = _parser().parse_args(argv)
    try:
        return int(args.run(args))
    except CliError as exc:
        print(f"agentloop {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `agentloop report ... | head`: the reader left, which is no error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
