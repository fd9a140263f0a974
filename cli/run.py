"""The ``run`` and ``scenarios`` commands of the ``releasesim`` CLI.

    releasesim run [SCENARIO] [--replications N] [--seed S] [--workers W]
                   [--executor serial|process|dask] [--scheduler tcp://HOST:PORT]
                   [--set key.path=value ...] [--out DIR] [--quiet] [--keep-store] [--json]
    releasesim scenarios list
    releasesim scenarios schema
    releasesim scenarios show NAME [--format toml|json]
    releasesim scenarios validate SCENARIO [SCENARIO ...]

Everything (scenario, overrides, numbers, scheduler URL, destination) is validated
before any replication runs; a user's mistake is one line on stderr and exit code 2.
``run`` prints the blast-radius summary on stdout and a final one-line report on stderr;
it exits 1 when an invariant column is non-zero in any replication.

Wiring only: the work is in ``sim.api``/``sim.runner``; ``cli.main`` registers this module.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

from releasesim.cli.args import EXECUTORS, EXIT_USAGE, fail, positive_int, seed, show_usage
from releasesim.model.errors import ReleasesimError
from releasesim.sim.errors import ScenarioError

EXIT_OK = 0
EXIT_INVARIANT = 1
SCENARIO_ERRORS = (ScenarioError, ReleasesimError)


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``run`` and ``scenarios`` to the CLI."""
    run = sub.add_parser(
        "run",
        help="run replications of a scenario and write a run directory",
        description="Run replications of a scenario, print the blast radius, write the tables.",
    )
    run.add_argument(
        "scenario",
        nargs="?",
        default="baseline",
        metavar="SCENARIO",
        help="a shipped scenario name or a path to a TOML file (default: baseline)",
    )
    run.add_argument("--replications", "-n", type=positive_int, metavar="N",
                     help="number of replications (default: the scenario's, else 20)")
    run.add_argument("--seed", "-s", type=seed, metavar="S",
                     help="root seed; replication i uses (S, i) (default: the scenario's, else 0)")
    run.add_argument("--workers", "-w", type=positive_int, metavar="W",
                     help="worker processes (default: CPU count)")
    run.add_argument("--executor", "-e", choices=EXECUTORS, default="process",
                     help="where replications run (default: process)")
    run.add_argument("--scheduler", metavar="tcp://HOST:PORT",
                     help="Dask scheduler address (--executor dask; default: a LocalCluster)")
    run.add_argument("--set", dest="overrides", action="append", default=[],
                     metavar="key.path=value", help="override a scenario value (repeatable)")
    run.add_argument("--out", "-o", type=Path, metavar="DIR",
                     help="run directory (default: runs/<scenario>-<UTC timestamp>); "
                          "must not exist or be empty")
    run.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    run.add_argument("--keep-store", action="store_true",
                     help="export replication 0's governance store as governance.db")
    run.add_argument("--json", action="store_true",
                     help="print the blast-radius summary as JSON (headline, warnings, every "
                          "measure with its interval and qualifier) instead of the table")
    run.set_defaults(func=cmd_run)

    scenarios = sub.add_parser("scenarios", help="list, show and validate scenarios",
                               description="List, show and validate scenarios.")
    ssub = scenarios.add_subparsers(dest="scenarios_command", metavar="COMMAND")
    scenarios.set_defaults(func=show_usage(scenarios))
    ls = ssub.add_parser("list", help="list the shipped scenarios")
    ls.set_defaults(func=cmd_scenarios_list)
    schema = ssub.add_parser("schema", help="print the scenario JSON Schema")
    schema.set_defaults(func=cmd_scenarios_schema)
    show = ssub.add_parser("show", help="print a scenario as resolved (defaults filled in)")
    show.add_argument("name", metavar="NAME", help="a shipped scenario name or a TOML path")
    show.add_argument("--set", dest="overrides", action="append", default=[],
                      metavar="key.path=value", help="override a scenario value (repeatable)")
    show.add_argument("--format", choices=("toml", "json"), default="toml",
                      help="output format (default toml)")
    show.set_defaults(func=cmd_scenarios_show)
    validate = ssub.add_parser(
        "validate", help="check scenario files without running them (exit 2 on the first error)"
    )
    validate.add_argument("names", nargs="+", metavar="SCENARIO",
                          help="shipped scenario names or TOML paths")
    validate.set_defaults(func=cmd_scenarios_validate)


def cmd_run(args: argparse.Namespace) -> int:
    from releasesim.reports.blast_radius import (
        blast_radius,
        blast_radius_json,
        format_blast_radius,
        main_rows,
    )
    from releasesim.reports.report import RunTables, build_report, save_report
    from releasesim.sim.api import resolve_scenario
    from releasesim.sim.executors import probe_scheduler  # imports pandas: not at start-up
    from releasesim.sim.runner import check_out_dir, resolve_run_settings, run_label, run_scenario

    settings = {
        "replications": args.replications,
        "seed": args.seed,
        "workers": args.workers,
        "executor": args.executor,
        "scheduler": args.scheduler,
    }
    try:
        scenario = resolve_scenario(args.scenario, args.overrides)
        resolve_run_settings(scenario, **settings)  # also validates the executor settings
        if args.scheduler is not None:
            probe_scheduler(args.scheduler)
        if args.out is not None:
            check_out_dir(args.out)
        result = run_scenario(
            scenario,
            **settings,
            out_dir=args.out,
            progress=not args.quiet,
            keep_store=bool(args.keep_store),
            extra_manifest={"overrides": list(args.overrides)},
        )
    except SCENARIO_ERRORS as exc:
        return fail(exc, EXIT_USAGE)  # exit 1 means an invariant was violated
    report = None
    if result.out_dir is not None:
        # one computation of the measures serves the printed table and the report files
        report = build_report(RunTables(result.summary, result.nodes, result.events,
                                        result.manifest, result.downtime))
        table = main_rows(report.table)
    else:
        table = blast_radius(result.summary, result.nodes, result.events)
    reps = len(result.summary)
    if args.json:
        facts = {**result.manifest, "run_dir": str(result.out_dir) if result.out_dir else None}
        doc = blast_radius_json(table, facts, result.invariant_violations, reps)
        print(json.dumps(doc, indent=2, allow_nan=False))
    else:
        print(format_blast_radius(table, result.manifest, result.invariant_violations, reps))
    if report is not None and result.out_dir is not None:
        written = save_report(report, Path(result.out_dir))
        html = next((p for p in written if p.name == "report.html"), None)
        if html is not None:
            print(f"{run_label(result)}; report: {html}", file=sys.stderr)
            return EXIT_OK if result.ok else EXIT_INVARIANT
    print(run_label(result), file=sys.stderr)
    return EXIT_OK if result.ok else EXIT_INVARIANT


def cmd_scenarios_list(args: argparse.Namespace) -> int:
    from releasesim.sim.scenario import list_scenarios

    try:
        entries = list_scenarios()
    except SCENARIO_ERRORS as exc:
        return fail(exc, EXIT_USAGE)
    for entry in entries:
        if isinstance(entry, str):
            print(entry)
        elif isinstance(entry, tuple | list) and len(entry) >= 2:
            print(f"{entry[0]:<24} {entry[1]}")
        else:
            name = getattr(entry, "name", entry)
            description = getattr(entry, "description", "")
            print(f"{name:<24} {description}".rstrip())
    return EXIT_OK


def cmd_scenarios_schema(args: argparse.Namespace) -> int:
    from releasesim.sim.scenario_docs import json_schema

    print(json.dumps(json_schema(), indent=2))
    return EXIT_OK


def cmd_scenarios_show(args: argparse.Namespace) -> int:
    from releasesim.sim.api import resolve_scenario
    from releasesim.sim.runner import _json_safe as json_safe  # NaN/inf -> null, as in the manifest

    try:
        scenario = resolve_scenario(args.name, args.overrides)
    except SCENARIO_ERRORS as exc:
        return fail(exc, EXIT_USAGE)
    data = scenario.to_dict()
    if args.format == "json":
        print(json.dumps(json_safe(data), indent=2))
    else:
        print(to_toml(data), end="")
    return EXIT_OK


def cmd_scenarios_validate(args: argparse.Namespace) -> int:
    from releasesim.sim.api import resolve_scenario
    from releasesim.sim.scenario import config_hash

    for name in args.names:
        try:
            scenario = resolve_scenario(name, [])
        except SCENARIO_ERRORS as exc:
            return fail(exc, EXIT_USAGE)
        print(f"ok: {name} (scenario {scenario.name}, config {config_hash(scenario)[:12]})")
    return EXIT_OK


# --------------------------------------------------------------------------- TOML output


def _toml_key(key: str) -> str:
    if key and all(ch.isalnum() or ch in "-_" for ch in key):
        return key
    return json.dumps(key)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        items = ", ".join(
            f"{_toml_key(k)} = {_toml_value(v)}" for k, v in value.items() if v is not None
        )
        return "{ " + items + " }" if items else "{}"
    raise TypeError(f"cannot write {type(value).__name__} as TOML")


def _is_table_array(value: Any) -> bool:
    return isinstance(value, list | tuple) and bool(value) and all(
        isinstance(v, dict) for v in value
    )


def to_toml(data: dict[str, Any], prefix: str = "") -> str:
    """A small TOML writer for resolved scenarios (tables, arrays of tables, scalars).

    ``None`` values are left out (TOML has no null: the key takes its default).
    """
    lines: list[str] = []
    tables: list[tuple[str, Any]] = []
    for key, value in data.items():
        if value is None:
            continue
        if isinstance(value, dict) or _is_table_array(value):
            tables.append((key, value))
        else:
            lines.append(f"{_toml_key(key)} = {_toml_value(value)}")
    out = "\n".join(lines) + ("\n" if lines else "")
    for key, value in tables:
        path = f"{prefix}.{_toml_key(key)}" if prefix else _toml_key(key)
        if isinstance(value, dict):
            body = to_toml(value, path)
            scalars = any(
                v is not None and not (isinstance(v, dict) or _is_table_array(v))
                for v in value.values()
            )
            out += ("\n" if out else "") + (f"[{path}]\n" if scalars or not value else "") + body
        else:
            for item in value:
                out += ("\n" if out else "") + f"[[{path}]]\n" + to_toml(item, path)
    return out
