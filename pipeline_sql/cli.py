"""``python -m pipeline_sql``: validate specs, render SQL, run the five layers, export a layer,
and a demo that lands the sample batches round by round.

    python -m pipeline_sql validate [--config-dir DIR]
    python -m pipeline_sql render TABLE [--layer L] [--project P] [--env E] [--landing-uri gs://B]
    python -m pipeline_sql run [--tables a,b] [--full-refresh] [--landing DIR] [--state DIR] [--project P]
                               [--lineage-file F] [--lineage-url U] [--summary-mermaid F]
    python -m pipeline_sql export TABLE [--layer staging|archive|delta|transform|dwh|rejects] [--state DIR]
    python -m pipeline_sql checks [--tables a,b] [--history N] [--state DIR]
    python -m pipeline_sql demo [--landing DIR] [--state DIR]
    python -m pipeline_sql lineage [TABLE] [--format mermaid|dot|json|openlineage] [--project P] [--env E]
    python -m pipeline_sql schema [--output F] [--check]    (the spec format's JSON Schema)

Locally everything runs on the embedded engine with its state in ``.flexyboots/`` (so runs
accumulate history like a real warehouse); ``--project P`` runs the same SQL on real BigQuery
with application-default credentials.
"""

from __future__ import annotations

import argparse
import datetime as dt
import decimal
import json
import re
import shutil
import sys
import time
from pathlib import Path

from .naming import LAYERS, LOCAL_PROJECT, Naming
from .render import EXPORT_LAYERS, render_dwh_snapshot, render_export, render_layer, render_rejects_listing
from .runner import UP_TO_DATE, LayerError, LayerResult, RunFailed, Runner, landed_files
from .spec import SpecError, TableSpec, load_specs

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CONFIG = ROOT / "config" / "tables"
DEFAULT_SCHEMA = ROOT / "config" / "spec.schema.json"
DEFAULT_LANDING = ROOT / "landing"
DEFAULT_STATE = ROOT / ".flexyboots"


class CliError(Exception):
    pass


def _print(line: str = "") -> None:
    print(line, flush=True)


# ----------------------------------------------------------------------------- helpers


def _specs(args, tables: list[str] | None = None) -> list[TableSpec]:
    return load_specs(args.config_dir, tables)


def _naming(args) -> Naming:
    try:
        return Naming(project=args.project or LOCAL_PROJECT, env=getattr(args, "env", "") or "")
    except ValueError as e:
        raise CliError(str(e)) from e


class _Session:
    """A runner on the embedded engine (``state`` dir) or on real BigQuery (``project``)."""

    def __init__(self, args, landing: str | Path | None, state: Path | None):
        self.args, self.state = args, state
        self.landing = landing if args.project or landing is None else Path(landing)
        self.engine = None
        self.engine_seconds = 0.0

    def __enter__(self) -> Runner:
        naming = _naming(self.args)
        progress = _print if not getattr(self.args, "quiet", False) else None
        if self.args.project:
            try:
                from google.cloud import bigquery

                client = bigquery.Client(project=self.args.project)
            except Exception as e:  # no credentials, bad project...
                raise CliError(f"cannot reach BigQuery project {self.args.project!r}: {e}") from e
            uri = str(self.landing) if self.landing is not None else "gs://landing"  # export loads nothing
            if not uri.startswith("gs://"):
                raise CliError("--project needs --landing gs://<landing bucket> (staging reads the landed files from it)")
            return Runner(client, naming, landing_dir=None, landing_uri=uri.rstrip("/"), progress=progress, local=False)
        from .engine import EngineError, LocalEngine

        if self.landing is not None and not self.landing.is_dir():
            raise CliError(f"landing folder {self.landing} does not exist; expected a folder with <source.path>/ files")
        gcs_root = self.landing.resolve().parent if self.landing else None
        self.engine = LocalEngine(state_dir=self.state, gcs_root=gcs_root)
        t0 = time.perf_counter()
        try:
            self.engine.start()
        except EngineError as e:
            raise CliError(str(e)) from e
        self.engine_seconds = time.perf_counter() - t0
        return Runner(self.engine.client, naming, landing_dir=self.landing, progress=progress, read_in_place=True)

    def __exit__(self, *exc) -> None:
        if self.engine is not None:
            self.engine.stop()


def _summary(results: list[LayerResult]) -> None:
    _print()
    _print(f"{'table':<14} {'layer':<9} {'rows in':>9} {'rows out':>9} {'inserted':>9} {'updated':>8} {'rejected':>9} {'null keys':>9} {'seconds':>8}")
    for r in results:
        if r.layer == UP_TO_DATE:
            continue
        d = r.detail
        rejected = d.get("rejected", "")
        _print(
            f"{r.table:<14} {r.layer:<9} {r.rows_in:>9} {r.rows_out:>9} {d.get('inserted', ''):>9} {d.get('updated', ''):>8} "
            f"{rejected:>9} {d.get('null_key_rows', ''):>9} {r.seconds:>8.2f}"
        )
    idle = [r.table for r in results if r.layer == UP_TO_DATE]
    if idle:
        _print(f"{len(idle)} tables up to date (no new landed file, the DWH holds everything archived; nothing ran): {', '.join(idle)}")


# ----------------------------------------------------------------------------- commands


def cmd_validate(args) -> int:
    specs = _specs(args)
    for s in specs:
        _print(f"ok  {s.file}  ({s.table}: {len(s.columns)} columns, key {', '.join(s.key)}, {s.source.format})")
    _print(f"{len(specs)} table specs valid")
    return 0


def cmd_schema(args) -> int:
    """Write (or with --check, compare) the JSON Schema of the spec format."""
    from .specschema import REGENERATE, schema_text, write_schema

    out = Path(args.output)
    if args.check:
        if not out.exists() or out.read_text(encoding="utf-8") != schema_text():
            print(f"error: {out} is stale; regenerate it with `{REGENERATE}`", file=sys.stderr)
            return 1
        _print(f"{out} is up to date")
        return 0
    changed = write_schema(out)
    _print(f"{'wrote' if changed else 'unchanged'} {out}")
    return 0


def cmd_render(args) -> int:
    (spec,) = _specs(args, [args.table])
    naming = _naming(args)
    layers = [args.layer] if args.layer else list(LAYERS) + ["checks"]
    for i, layer in enumerate(layers):
        if i:
            _print()
        _print(render_layer(spec, naming, layer, args.landing_uri).rstrip())
    return 0


def cmd_run(args) -> int:
    tables = [t.strip() for t in args.tables.split(",") if t.strip()] if args.tables else None
    specs = _specs(args, tables)
    landing = args.landing  # a folder, or gs://<bucket> with --project
    state = None if args.project else Path(args.state)
    where = f"BigQuery project {args.project}" if args.project else f"embedded engine, state in {state}"
    _print(f"flexyboots run: {len(specs)} tables ({', '.join(s.table for s in specs)}) from {landing} on {where}")
    t0 = time.perf_counter()
    results: list[LayerResult] = []
    session = _Session(args, landing, state)
    failed: RunFailed | None = None
    warnings: list[str] = []
    try:
        with session as runner:
            if not args.project:
                _print(f"engine started in {session.engine_seconds:.2f}s")
            try:
                runner.run(specs, results, full_refresh=args.full_refresh)  # results grow as tables run: a failure keeps what ran
            except RunFailed as e:  # every table ran; some failed or refused a file
                failed = e
            warnings = list(runner.warnings)
    except LayerError as e:  # the run could not start (bootstrap, plan)
        _emit_lineage(args, specs, results, failed=[(e.table, e.layer, str(e))])
        raise
    _summary(results)
    if warnings:
        _print(f"\n{len(warnings)} warning{'s' if len(warnings) != 1 else ''}:")
        for line in warnings:
            _print(f"  {line}")
    if args.summary_mermaid:
        from .lineage import run_diagram

        Path(args.summary_mermaid).write_text(run_diagram(results).to_mermaid(), encoding="utf-8")
        _print(f"run summary (Mermaid) written to {args.summary_mermaid}")
    if failed is not None:  # a FAIL event per failed table, and per refused file (its staging)
        failures = [(e.table, e.layer, str(e)) for e in failed.failures] + [(r.table, "staging", f"refused {r}") for r in failed.refused]
        _emit_lineage(args, specs, results, failed=failures)
    else:
        _emit_lineage(args, specs, results)
    if failed is not None:
        _print(f"\nfailed in {time.perf_counter() - t0:.1f}s")
        print(f"error: {failed}", file=sys.stderr, flush=True)
        return 1
    _print(f"\ndone in {time.perf_counter() - t0:.1f}s")
    return 0


def _emit_lineage(args, specs: list[TableSpec], results: list[LayerResult], failed=None) -> None:
    """``run --lineage-file F / --lineage-url U``: the run's OpenLineage events (see
    :func:`pipeline_sql.openlineage.run_events`)."""
    if not (args.lineage_file or args.lineage_url):
        return
    from .lineage import build_lineage
    from .openlineage import EmitError, emit, run_events

    landing = str(args.landing) if args.project else str(Path(args.landing).resolve())
    all_specs = load_specs(args.config_dir)  # relationships may reference tables not run
    lin = build_lineage(all_specs, _naming(args), landing, tables=[s.table for s in specs])
    events = run_events(lin, all_specs, results, failed=failed)
    try:
        emit(events, file=args.lineage_file, url=args.lineage_url)
    except EmitError as e:
        raise CliError(str(e)) from e
    _print(f"lineage: {len(events)} OpenLineage events sent to {' and '.join(x for x in (args.lineage_file, args.lineage_url) if x)}")


LINEAGE_FORMATS = ("mermaid", "dot", "json", "openlineage")


def cmd_lineage(args) -> int:
    """The lineage of one table (column level) or of all (table level)."""
    from .lineage import LineageError, build_lineage, table_diagram, tables_diagram
    from .openlineage import lineage_events, to_json

    specs = _specs(args)
    try:
        lin = build_lineage(specs, _naming(args), args.landing_uri, tables=[args.table] if args.table else None)
    except LineageError as e:
        raise CliError(str(e)) from e
    if args.format == "json":
        sys.stdout.write(json.dumps(lin.to_json(), indent=2) + "\n")
    elif args.format == "openlineage":
        for ev in lineage_events(lin, specs):
            sys.stdout.write(to_json(ev) + "\n")
    else:
        diagram = table_diagram(lin, args.table) if args.table else tables_diagram(lin)
        sys.stdout.write(diagram.to_mermaid() if args.format == "mermaid" else diagram.to_dot(f"lineage_{args.table or 'tables'}"))
    return 0


def _json_default(v):
    if isinstance(v, decimal.Decimal):
        return str(v)
    if isinstance(v, (dt.datetime, dt.date, dt.time)):
        return v.isoformat()
    if isinstance(v, bytes):
        return v.hex()
    raise TypeError(type(v).__name__)


def cmd_export(args) -> int:
    (spec,) = _specs(args, [args.table])
    layer = args.layer
    state = Path(args.state)
    if not args.project and not state.exists():
        raise CliError(f"no engine state in {state}; run `python -m pipeline_sql run` first")
    with _Session(args, None, state if not args.project else None) as runner:
        runner.progress = lambda line: None
        try:
            rows = runner.query(render_export(spec, runner.naming, layer), table=spec.table, layer=layer)
        except LayerError as e:
            if "not found" in str(e).lower() or "does not exist" in str(e).lower():
                raise CliError(f"{spec.table}: no {layer} table yet in {state}; run `python -m pipeline_sql run` first") from e
            raise
        out = sys.stdout
        for row in rows:
            out.write(json.dumps(dict(row.items()), default=_json_default, sort_keys=False) + "\n")
    return 0


def _results_table(rows: list[dict], table: str) -> list[str]:
    """Check results as aligned text lines (one per result)."""
    lines = []
    for r in rows:
        verdict = "pass" if r["passed"] else ("FAIL" if r["severity"] == "error" else "warn")
        failing = "" if r["failing_rows"] is None else str(r["failing_rows"])
        sample = f"  e.g. {', '.join('(' + k + ')' for k in r['sample_keys'])}" if r["sample_keys"] and not r["passed"] else ""
        lines.append(f"{table:<14} {r['check_name'][:52]:<52} {r['severity']:<5} {verdict:<4} {failing:>7}  {r['message'] or ''}{sample}")
    return lines


def cmd_checks(args) -> int:
    """Run the checks of each table on the local state, print the results (and earlier runs')."""
    tables = [t.strip() for t in args.tables.split(",") if t.strip()] if args.tables else None
    specs = _specs(args, tables)
    state = Path(args.state)
    if not args.project and not state.exists():
        raise CliError(f"no engine state in {state}; run `python -m pipeline_sql run` first")
    failed: list[str] = []
    with _Session(args, None, None if args.project else state) as runner:
        runner.progress = lambda line: None
        runner.bootstrap(specs)
        _print(f"{'table':<14} {'check':<52} {'sev':<5} {'':<4} {'failing':>7}  message")
        for spec in specs:
            try:
                res = runner.run_checks(spec)
            except LayerError as e:
                res = e.result
                failed.append(spec.table)
                if res is None:
                    raise
            for line in _results_table(res.detail["results"], spec.table):
                _print(line)
            if not spec.checks:
                _print(f"{spec.table:<14} (no checks in {spec.file})")
        if args.history > 1:
            ref = runner.naming.table_id("quality", "check_results")
            _print(f"\nthe last {args.history} runs per table, from {ref}:")
            for spec in specs:
                rows = runner.check_results(spec, history=args.history)
                runs: dict[str, list[dict]] = {}
                for r in rows:
                    runs.setdefault(f"{r['run_id']} at {r['checked_at']:%Y-%m-%d %H:%M:%S}", []).append(r)
                for run, rs in runs.items():
                    bad = [r["check_name"] for r in rs if not r["passed"]]
                    _print(f"  {run}: {sum(r['passed'] for r in rs)}/{len(rs)} passed" + (f"; failed: {', '.join(bad)}" if bad else ""))
    if failed:
        _print(f"\nerror-severity checks failed on: {', '.join(failed)}")
        return 1
    return 0


_ROUND = re.compile(r"^(\d+)[_\-.]")


def _rounds(landing: Path, specs: list[TableSpec]) -> dict[int, list[tuple[TableSpec, Path]]]:
    rounds: dict[int, list[tuple[TableSpec, Path]]] = {}
    for spec in specs:
        for i, f in enumerate(landed_files(landing, spec)):
            m = _ROUND.match(f.name)
            n = int(m.group(1)) if m else i + 1
            rounds.setdefault(n, []).append((spec, f))
    return dict(sorted(rounds.items()))


def _dwh_snapshot(runner: Runner, spec: TableSpec) -> dict:
    rows = runner.query(render_dwh_snapshot(spec, runner.naming), table=spec.table, layer="dwh")
    return {tuple(r[k] for k in spec.key): dict(r.items()) for r in rows}


def _fmt(v) -> str:
    if isinstance(v, dt.datetime):
        return v.strftime("%Y-%m-%d %H:%M")
    if isinstance(v, decimal.Decimal):
        return format(v.normalize(), "f")
    return "NULL" if v is None else str(v)


def cmd_demo(args) -> int:
    specs = _specs(args)
    source = Path(args.landing)
    if not source.is_dir():
        raise CliError(f"landing folder {source} does not exist")
    state = Path(args.state) / "demo"
    if state.exists():
        shutil.rmtree(state)
    demo_landing = state / "landing"
    demo_landing.mkdir(parents=True)
    rounds = _rounds(source, specs)
    _print(f"flexyboots demo: {len(specs)} tables, {len(rounds)} rounds of landed batches from {source}")
    _print(f"embedded engine state in {state} (fresh); each round lands one more batch per table and runs all five layers\n")
    args.project = None
    with _Session(args, demo_landing, state / "engine") as runner:
        runner.bootstrap(specs)
        shown_rejects: set = set()
        for n, batch in rounds.items():
            _print(f"=== round {n}: landing {', '.join(p.relative_to(source).as_posix() for _, p in batch)}")
            for spec, path in batch:
                dest = demo_landing / path.relative_to(source)
                dest.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(path, dest)
            for spec in specs:
                before = _dwh_snapshot(runner, spec)
                runner.run_table(spec)
                after = _dwh_snapshot(runner, spec)
                changes = []
                for k in sorted(after, key=lambda k: tuple(map(str, k))):
                    key = ", ".join(map(_fmt, k))
                    if k not in before:
                        changes.append(f"    + {spec.table}({key}) inserted")
                    elif before[k] != after[k]:
                        diff = [f"{c}: {_fmt(before[k][c])} -> {_fmt(after[k][c])}" for c in after[k] if before[k][c] != after[k][c]]
                        changes.append(f"    ~ {spec.table}({key}) {'; '.join(diff)}")
                if changes:
                    _print(f"  DWH changes in {spec.table}:")
                    for line in changes[:12]:
                        _print(line)
                    if len(changes) > 12:
                        _print(f"    ... and {len(changes) - 12} more")
                rejects = runner.query(render_rejects_listing(spec, runner.naming), table=spec.table, layer="rejects")
                for r in rejects:
                    ident = (spec.table, r["_row_hash"], r["column_name"])
                    if ident not in shown_rejects:
                        shown_rejects.add(ident)
                        key = ", ".join(str(r[k]) for k in spec.key)
                        _print(f"    ! {spec.table}({key}) rejected: {r['column_name']} = {r['value']!r} is {r['reason']}")
            _print()
    _print("demo done. Inspect a layer with e.g.:")
    _print(f"  .venv/bin/python -m pipeline_sql export customers --layer dwh --state {state / 'engine'}")
    return 0


# ----------------------------------------------------------------------------- entry point


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m pipeline_sql", description="flexyboots five-layer ETL: table specs -> BigQuery SQL")
    sub = p.add_subparsers(dest="command", required=True)

    def common(sp, state=False, project=True):
        sp.add_argument("--config-dir", default=str(DEFAULT_CONFIG), help="folder of <table>.yaml specs (default: config/tables)")
        if project:
            sp.add_argument("--project", default=None, help="run against this real BigQuery project (default: the embedded engine)")
            sp.add_argument("--env", default="", help="dataset prefix of an environment, e.g. dev -> dev_staging (default: none)")
        if state:
            sp.add_argument("--state", default=str(DEFAULT_STATE), help="embedded engine state folder (default: .flexyboots/)")

    sp = sub.add_parser("validate", help="check every table spec; exit non-zero on the first bad one")
    common(sp, project=False)
    sp.set_defaults(func=cmd_validate)

    sp = sub.add_parser("schema", help="write the JSON Schema of the spec format (editors complete and check specs with it)")
    sp.add_argument("--output", default=str(DEFAULT_SCHEMA), metavar="F", help="where to write it (default: config/spec.schema.json)")
    sp.add_argument("--check", action="store_true", help="write nothing; exit 1 when the file differs from the generated schema")
    sp.set_defaults(func=cmd_schema)

    sp = sub.add_parser("render", help="print a table's SQL (all layers and checks, or one)")
    sp.add_argument("table")
    sp.add_argument("--layer", choices=list(LAYERS) + ["checks"])
    sp.add_argument("--landing-uri", default="gs://landing", help="landing bucket the staging layer reads (default: gs://landing)")
    common(sp)
    sp.set_defaults(func=cmd_render)

    sp = sub.add_parser("run", help="run the five layers of each table")
    sp.add_argument("--tables", default=None, help="comma-separated table names (default: all)")
    sp.add_argument("--landing", default=str(DEFAULT_LANDING), help="landing folder, or gs://bucket with --project (default: the sample landing/)")
    sp.add_argument("--quiet", action="store_true", help="no progress lines, only the summary")
    sp.add_argument(
        "--full-refresh",
        action="store_true",
        help="rebuild transform and DWH from the whole archive with the current spec (after a type, derived-column, "
        "version_by or partitioning change; see the README's 'Changing a spec')",
    )
    sp.add_argument("--summary-mermaid", default=None, metavar="F", help="also write the run's summary as a Mermaid flowchart to F")
    sp.add_argument("--lineage-file", default=None, metavar="F", help="append the run's OpenLineage events to this file (JSON lines)")
    sp.add_argument("--lineage-url", default=None, metavar="U", help="POST the run's OpenLineage events to U/api/v1/lineage (Marquez or any OpenLineage consumer)")
    common(sp, state=True)
    sp.set_defaults(func=cmd_run)

    sp = sub.add_parser("export", help="a layer's rows as newline-delimited JSON, sorted by key")
    sp.add_argument("table")
    sp.add_argument("--layer", default="dwh", choices=EXPORT_LAYERS)
    common(sp, state=True)
    sp.set_defaults(func=cmd_export)

    sp = sub.add_parser("checks", help="run the tables' data-quality checks on the local state and print the results")
    sp.add_argument("--tables", default=None, help="comma-separated table names (default: all)")
    sp.add_argument("--history", type=int, default=1, metavar="N", help="also show the last N runs per table from quality.check_results")
    common(sp, state=True)
    sp.set_defaults(func=cmd_checks)

    sp = sub.add_parser("lineage", help="the lineage of one table (column level) or all tables (table level)")
    sp.add_argument("table", nargs="?", default=None, help="a table: its columns through every layer (default: all tables, table level)")
    sp.add_argument("--format", default="mermaid", choices=LINEAGE_FORMATS, help="mermaid (default), dot (Graphviz), json, or openlineage (run events, one JSON per line)")
    sp.add_argument("--landing-uri", default="gs://landing", help="landing bucket the files land in (default: gs://landing)")
    common(sp)
    sp.set_defaults(func=cmd_lineage)

    sp = sub.add_parser("demo", help="land the sample batches round by round, run all layers, show what changed")
    sp.add_argument("--landing", default=str(DEFAULT_LANDING), help="folder with NNN_*.ext batches per table (default: landing/)")
    common(sp, state=True, project=False)
    sp.set_defaults(func=cmd_demo)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if not hasattr(args, "project"):
        args.project = None
    try:
        return args.func(args)
    except SpecError as e:
        print(f"error: invalid table spec: {e}", file=sys.stderr)
        return 2
    except (CliError, LayerError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except BrokenPipeError:  # e.g. `export ... | head`
        return 0
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
