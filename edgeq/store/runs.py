"""Every compile's report in one SQLite file, so runs can be compared and regressions flagged.

SQLite in WAL mode with a busy timeout lets several compiles record at once; each record is one
transaction, so a killed writer leaves the previous state readable. The schema is versioned in
`meta` and upgraded by the ordered `_MIGRATIONS`.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

from edgeq.errors import InputError
from edgeq.report.gates import verdict
from edgeq.report.read import read_report
from edgeq.report.schema import Report

RUN_ID_PATTERN = re.compile(r"[0-9A-Za-z][0-9A-Za-z_-]{0,79}")

_MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE runs (
        run_id TEXT PRIMARY KEY,
        created TEXT NOT NULL,
        model TEXT NOT NULL,
        model_sha256 TEXT,
        target TEXT NOT NULL,
        recipe_hash TEXT,
        speedup_b1 REAL,
        worst_cosine REAL,
        task_drop REAL,
        size_ratio REAL,
        html_path TEXT,
        report_json TEXT NOT NULL
    );
    CREATE INDEX runs_model_target_created ON runs (model, target, created);
    CREATE INDEX runs_recipe ON runs (recipe_hash);
    """,
    """
    ALTER TABLE runs ADD COLUMN decision TEXT;
    ALTER TABLE runs ADD COLUMN speedups TEXT;
    ALTER TABLE runs ADD COLUMN slowest_speedup REAL;
    ALTER TABLE runs ADD COLUMN gates_passed INTEGER;
    ALTER TABLE runs ADD COLUMN gates_verdict TEXT;
    ALTER TABLE runs ADD COLUMN report_path TEXT;
    """,
    """
    ALTER TABLE runs ADD COLUMN bits INTEGER;
    ALTER TABLE runs ADD COLUMN mode TEXT;
    ALTER TABLE runs ADD COLUMN prune TEXT;
    CREATE INDEX runs_series ON runs (model_sha256, target, recipe_hash);
    """,
)
SCHEMA_VERSION = len(_MIGRATIONS)
_FIELDS = (
    "run_id",
    "created",
    "model",
    "model_sha256",
    "target",
    "recipe_hash",
    "bits",
    "mode",
    "prune",
    "decision",
    "speedups",
    "speedup_b1",
    "slowest_speedup",
    "worst_cosine",
    "task_drop",
    "size_ratio",
    "gates_passed",
    "gates_verdict",
    "html_path",
    "report_path",
)
_COLUMNS = ", ".join(_FIELDS)


class StoreError(Exception):
    """The runs store cannot be used as it is (e.g. written by a newer edgeq)."""


@dataclass(frozen=True)
class RunSummary:
    """The indexed columns of one recorded run: what tables, charts and regressions need.

    `speedup_b1` is the speedup at batch 1 (else the smallest batch), what regressions compare;
    `gates_verdict` is `edgeq.report.gates.verdict` of the run's gates (None: no gates); `bits`,
    `mode` and `prune` are the recipe's, so a table can show what changed between runs."""

    run_id: str
    created: str
    model: str
    model_sha256: str | None
    target: str
    recipe_hash: str | None
    bits: int | None
    mode: str | None
    prune: str | None
    decision: str | None
    speedups: dict[int, float]
    speedup_b1: float | None
    slowest_speedup: float | None
    worst_cosine: float | None
    task_drop: float | None
    size_ratio: float | None
    gates_passed: bool | None
    gates_verdict: str | None
    html_path: str | None
    report_path: str | None

    @classmethod
    def of(cls, report: Report, report_dir: Path | None) -> RunSummary:
        """The columns of `report`, whose files (report.json, report.html) are in `report_dir`."""
        headline = report.headline_latency
        folder = Path(report_dir).resolve() if report_dir else None
        recipe = report.recipe if isinstance(report.recipe, dict) else {}
        return cls(
            run_id=report.run_id,
            created=report.created,
            model=report.model.name,
            model_sha256=report.model.sha256,
            target=report.target.name,
            recipe_hash=recipe_hash(report.recipe),
            bits=recipe.get("bits"),
            mode=recipe.get("mode"),
            prune=_prune_text(recipe.get("prune")),
            decision=report.decision.chosen,
            speedups={e.batch: e.speedup for e in sorted(report.latency, key=lambda e: e.batch)},
            speedup_b1=headline.speedup if headline else None,
            slowest_speedup=report.slowest_speedup,
            worst_cosine=_finite_or_none(report.worst_cosine),
            task_drop=_finite_or_none(report.task_drop),
            size_ratio=report.size_ratio,
            gates_passed=report.passed if report.gates else None,
            gates_verdict=verdict(report.gates),
            html_path=str(folder / "report.html") if folder else None,
            report_path=str(folder / "report.json") if folder else None,
        )

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> RunSummary:
        values = dict(row)
        speedups = json.loads(values["speedups"]) if values["speedups"] else {}
        passed = values["gates_passed"]
        return cls(
            **values
            | {
                "speedups": {int(batch): value for batch, value in speedups.items()},
                "gates_passed": None if passed is None else bool(passed),
            }
        )

    def row(self) -> tuple:
        """The values in `_FIELDS` order, as SQLite stores them."""
        values = asdict(self) | {"speedups": json.dumps(self.speedups)}
        return tuple(values[name] for name in _FIELDS)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Regression:
    """A run that got slower or less faithful than the previous run of its series (`series_key`)."""

    run_id: str
    previous_run_id: str
    model: str
    target: str
    reasons: list[str] = field(default_factory=list)


def _prune_text(prune: object) -> str | None:
    """A recipe's prune section as a table shows it: `ifm β=0.25 max 0.2`; None when not pruned."""
    if not isinstance(prune, dict):
        return None
    parts = [str(prune.get("method", "prune"))]
    parts += [
        f"{label}{prune[key]:g}"
        for key, label in (("threshold", "β="), ("max_ratio", "max "))
        if key in prune
    ]
    return " ".join(parts)


def series_key(run: RunSummary) -> tuple[str, str, str | None]:
    """What makes two runs comparable: the same model content (its hash, else its name), target
    and recipe. A changed recipe (int4 vs int8, pruned vs not) starts a new series, never a regression."""
    return (run.model_sha256 or run.model, run.target, run.recipe_hash)


def default_runs_path() -> Path:
    """$EDGEQ_RUNS, else the user data dir ($XDG_DATA_HOME or ~/.local/share)/edgeq/runs.sqlite."""
    if os.environ.get("EDGEQ_RUNS"):
        return Path(os.environ["EDGEQ_RUNS"]).expanduser()
    data_home = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(data_home) / "edgeq" / "runs.sqlite"


def lock_timeout_s() -> float:
    """How long a writer waits for another one's lock: $EDGEQ_RUNS_TIMEOUT_S, else 30 s."""
    given = os.environ.get("EDGEQ_RUNS_TIMEOUT_S", "30")
    try:
        seconds = float(given)
    except ValueError:
        seconds = math.nan
    if not 0 <= seconds <= 3600:
        raise StoreError(f"$EDGEQ_RUNS_TIMEOUT_S must be seconds in [0, 3600], got {given!r}")
    return seconds


def recipe_hash(recipe: object) -> str | None:
    """A short content hash of the resolved recipe, so runs with the same recipe group together."""
    if recipe is None:
        return None
    canonical = json.dumps(recipe, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:12]


class RunStore:
    """The runs database: record reports, list and compare them, find regressions."""

    def __init__(self, path: Path | str | None = None, timeout_s: float | None = None) -> None:
        self.path = Path(path) if path is not None else default_runs_path()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._timeout_s = lock_timeout_s() if timeout_s is None else timeout_s
        self._migrate()

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        """A short-lived connection in autocommit mode; writers open their own transaction."""
        connection = sqlite3.connect(self.path, timeout=self._timeout_s, isolation_level=None)
        try:
            connection.execute(f"PRAGMA busy_timeout = {int(self._timeout_s * 1000)}")
            connection.execute("PRAGMA journal_mode = WAL")
            connection.execute("PRAGMA synchronous = NORMAL")
            connection.row_factory = sqlite3.Row
            yield connection
        finally:
            connection.close()

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One IMMEDIATE transaction: the write lock is taken first, so upgrades never deadlock."""
        with self._connect() as connection:
            connection.execute("BEGIN IMMEDIATE")
            try:
                yield connection
            except BaseException:
                connection.execute("ROLLBACK")
                raise
            connection.execute("COMMIT")

    def _migrate(self) -> None:
        with self._write() as connection:
            connection.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT)")
            row = connection.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
            version = int(row["value"]) if row else 0
            if version > SCHEMA_VERSION:
                raise StoreError(
                    f"runs store {self.path} has schema version {version}; this edgeq reads up to "
                    f"{SCHEMA_VERSION}: upgrade edgeq or point EDGEQ_RUNS at another file"
                )
            for script in _MIGRATIONS[version:]:
                for statement in filter(str.strip, script.split(";")):
                    connection.execute(statement)
            if 0 < version < SCHEMA_VERSION:
                _fill_summary_columns(connection)
            connection.execute(
                "INSERT OR REPLACE INTO meta (key, value) VALUES ('schema_version', ?)",
                (str(SCHEMA_VERSION),),
            )

    def schema_version(self) -> int:
        with self._connect() as connection:
            row = connection.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        return int(row["value"])

    def record(self, report: Report, report_dir: Path | None = None) -> str:
        """Store `report` (replacing a run with the same id) and return its run id."""
        if not RUN_ID_PATTERN.fullmatch(report.run_id):
            raise ValueError(f"run_id {report.run_id!r} must match {RUN_ID_PATTERN.pattern}")
        summary = RunSummary.of(report, report_dir)
        with self._write() as connection:
            connection.execute(
                f"INSERT OR REPLACE INTO runs ({_COLUMNS}, report_json) "
                f"VALUES ({', '.join('?' * (len(_FIELDS) + 1))})",
                (*summary.row(), json.dumps(report.to_dict())),
            )
        return report.run_id

    def list_runs(
        self, model: str | None = None, target: str | None = None, recipe: str | None = None
    ) -> list[RunSummary]:
        """Runs oldest first, optionally only one model, target and/or recipe hash."""
        clauses, values = [], []
        for column, value in (("model", model), ("target", target), ("recipe_hash", recipe)):
            if value:
                clauses.append(f"{column} = ?")
                values.append(value)
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        with self._connect() as connection:
            rows = connection.execute(
                f"SELECT {_COLUMNS} FROM runs {where} ORDER BY created, run_id", values
            ).fetchall()
        return [RunSummary.from_row(row) for row in rows]

    def get(self, run_id: str) -> Report | None:
        """The full stored report of one run (read and checked like a file), or None when not recorded."""
        with self._connect() as connection:
            row = connection.execute("SELECT report_json FROM runs WHERE run_id = ?", (run_id,)).fetchone()
        return _read(row) if row else None

    def summary(self, run_id: str) -> RunSummary | None:
        with self._connect() as connection:
            row = connection.execute(f"SELECT {_COLUMNS} FROM runs WHERE run_id = ?", (run_id,)).fetchone()
        return RunSummary.from_row(row) if row else None

    def regressions(
        self, threshold: float = 0.1, cosine_tolerance: float = 0.002, drop_tolerance: float = 0.5
    ) -> list[Regression]:
        """Runs worse than the previous run of their series (`series_key`: same model content,
        target and recipe).

        Slower: batch-1 speedup lower by more than `threshold` (relative). Less faithful: worst
        cosine lower by more than `cosine_tolerance`, or task drop larger by more than
        `drop_tolerance` (in the metric's unit, e.g. points of %).
        """
        found: list[Regression] = []
        previous: dict[tuple[str, str, str | None], RunSummary] = {}
        for run in self.list_runs():
            key = series_key(run)
            before = previous.get(key)
            previous[key] = run
            if before is None:
                continue
            reasons = _regression_reasons(before, run, threshold, cosine_tolerance, drop_tolerance)
            if reasons:
                found.append(Regression(run.run_id, before.run_id, run.model, run.target, reasons))
        return found


def _regression_reasons(
    before: RunSummary,
    after: RunSummary,
    threshold: float,
    cosine_tolerance: float,
    drop_tolerance: float,
) -> list[str]:
    reasons = []
    if (
        before.speedup_b1
        and after.speedup_b1 is not None
        and (after.speedup_b1 < before.speedup_b1 * (1 - threshold))
    ):
        reasons.append(f"speedup {before.speedup_b1:.2f}× → {after.speedup_b1:.2f}×")
    if None not in (before.worst_cosine, after.worst_cosine) and (
        after.worst_cosine < before.worst_cosine - cosine_tolerance
    ):
        reasons.append(f"worst cosine {before.worst_cosine:.4f} → {after.worst_cosine:.4f}")
    if None not in (before.task_drop, after.task_drop) and (
        after.task_drop > before.task_drop + drop_tolerance
    ):
        reasons.append(f"task drop {before.task_drop:.2f} → {after.task_drop:.2f}")
    return reasons


def _fill_summary_columns(connection: sqlite3.Connection) -> None:
    """Columns added since schema version 1, computed from each stored report that can still be read."""
    rows = connection.execute("SELECT run_id, html_path, report_json FROM runs").fetchall()
    for row in rows:
        try:
            report = _read(row)
        except InputError:
            continue  # left NULL: the run is still listed with the columns it had
        folder = Path(row["html_path"]).parent if row["html_path"] else None
        summary = RunSummary.of(report, folder)
        connection.execute(
            f"UPDATE runs SET ({_COLUMNS}) = ({', '.join('?' * len(_FIELDS))}) WHERE run_id = ?",
            (*summary.row(), row["run_id"]),
        )


def _read(row: sqlite3.Row) -> Report:
    try:
        data = json.loads(row["report_json"])
    except ValueError as exc:
        raise InputError(f"stored report is not valid JSON: {exc}") from None
    return read_report(data)


def _finite_or_none(value: float | None) -> float | None:
    """SQLite stores NaN as NULL anyway; saying so here keeps the summary equal to what is read back."""
    return None if value is None or math.isnan(value) else value


def record_run(report: Report, out_dir: Path, runs_path: Path | None = None) -> str:
    """Add a finished compile to the runs store ($EDGEQ_RUNS by default); returns the run id."""
    return RunStore(runs_path).record(report, Path(out_dir))


def record_or_explain(report: Report, out_dir: Path, runs_path: Path | None = None) -> str | None:
    """Record the run; any store problem (not a database, a directory, no permission, a lock held too
    long) comes back as one line for a warning, never as an error: the compile itself is done."""
    try:
        record_run(report, out_dir, runs_path)
    except Exception as exc:  # noqa: BLE001 - sqlite3, OS and store errors alike cost the record only
        return f"runs store not updated: {str(exc) or type(exc).__name__}"
    return None
