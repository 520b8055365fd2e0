"""Every compile's report in one SQLite file, so runs can be compared and regressions flagged.

SQLite in WAL mode with a busy timeout lets several compiles record at once; each record is one
transaction, so a killed writer leaves the previous state readable. The schema is versioned in
`meta` and upgraded by the ordered `_MIGRATIONS`.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from edgeq.report import headline as hl
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
)
SCHEMA_VERSION = len(_MIGRATIONS)
_COLUMNS = (
    "run_id, created, model, model_sha256, target, recipe_hash, speedup_b1, worst_cosine, "
    "task_drop, size_ratio, html_path"
)


class StoreError(Exception):
    """The runs store cannot be used as it is (e.g. written by a newer edgeq)."""


@dataclass(frozen=True)
class RunSummary:
    """The indexed columns of one recorded run: what tables, charts and regressions need."""

    run_id: str
    created: str
    model: str
    model_sha256: str | None
    target: str
    recipe_hash: str | None
    speedup_b1: float | None
    worst_cosine: float | None
    task_drop: float | None
    size_ratio: float | None
    html_path: str | None

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Regression:
    """A run that got slower or less faithful than the previous run of its model on its target."""

    run_id: str
    previous_run_id: str
    model: str
    target: str
    reasons: list[str] = field(default_factory=list)


def default_runs_path() -> Path:
    """$EDGEQ_RUNS, else the user data dir ($XDG_DATA_HOME or ~/.local/share)/edgeq/runs.sqlite."""
    if os.environ.get("EDGEQ_RUNS"):
        return Path(os.environ["EDGEQ_RUNS"]).expanduser()
    data_home = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(data_home) / "edgeq" / "runs.sqlite"


def recipe_hash(recipe: object) -> str | None:
    """A short content hash of the resolved recipe, so runs with the same recipe group together."""
    if recipe is None:
        return None
    canonical = json.dumps(recipe, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:12]


class RunStore:
    """The runs database: record reports, list and compare them, find regressions."""

    def __init__(self, path: Path | str | None = None, timeout_s: float = 30.0) -> None:
        self.path = Path(path) if path is not None else default_runs_path()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._timeout_s = timeout_s
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
            connection.execute(
                "INSERT OR REPLACE INTO meta (key, value) VALUES ('schema_version', ?)",
                (str(SCHEMA_VERSION),),
            )

    def schema_version(self) -> int:
        with self._connect() as connection:
            row = connection.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        return int(row["value"])

    def record(self, report: dict, report_dir: Path | None = None) -> str:
        """Store `report` (replacing a run with the same id) and return its run id."""
        run_id = hl.text(report.get("run_id")) or _new_run_id()
        if not RUN_ID_PATTERN.fullmatch(run_id):
            raise ValueError(f"run_id {run_id!r} must match {RUN_ID_PATTERN.pattern}")
        created = hl.text(report.get("created")) or datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        html_path = str(Path(report_dir).resolve() / "report.html") if report_dir else None
        row = (
            run_id,
            created,
            hl.model_name(report),
            hl.as_dict(report.get("model")).get("sha256"),
            hl.target_name(report),
            recipe_hash(report.get("recipe")),
            hl.headline_speedup(report),
            hl.worst_cosine(report),
            hl.task_drop(report),
            hl.size_ratio(report),
            html_path,
            json.dumps(report, default=str),
        )
        with self._write() as connection:
            connection.execute(
                f"INSERT OR REPLACE INTO runs ({_COLUMNS}, report_json) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                row,
            )
        return run_id

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
        return [RunSummary(**dict(row)) for row in rows]

    def get(self, run_id: str) -> dict | None:
        """The full stored report of one run, or None when no such run was recorded."""
        with self._connect() as connection:
            row = connection.execute("SELECT report_json FROM runs WHERE run_id = ?", (run_id,)).fetchone()
        return json.loads(row["report_json"]) if row else None

    def summary(self, run_id: str) -> RunSummary | None:
        with self._connect() as connection:
            row = connection.execute(f"SELECT {_COLUMNS} FROM runs WHERE run_id = ?", (run_id,)).fetchone()
        return RunSummary(**dict(row)) if row else None

    def history(self, model: str, target: str) -> list[dict]:
        """Full reports of one model on one target, oldest first: the data behind trend charts."""
        with self._connect() as connection:
            rows = connection.execute(
                "SELECT report_json FROM runs WHERE model = ? AND target = ? ORDER BY created, run_id",
                (model, target),
            ).fetchall()
        return [json.loads(row["report_json"]) for row in rows]

    def regressions(
        self, threshold: float = 0.1, cosine_tolerance: float = 0.002, drop_tolerance: float = 0.5
    ) -> list[Regression]:
        """Runs worse than the previous run of the same model/target.

        Slower: batch-1 speedup lower by more than `threshold` (relative). Less faithful: worst
        cosine lower by more than `cosine_tolerance`, or task drop larger by more than
        `drop_tolerance` (in the metric's unit, e.g. points of %).
        """
        found: list[Regression] = []
        previous: dict[tuple[str, str], RunSummary] = {}
        for run in self.list_runs():
            key = (run.model, run.target)
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


def _new_run_id() -> str:
    """Same shape as the compile pipeline's ids: UTC timestamp and a random suffix."""
    return f"{datetime.now(timezone.utc):%Y%m%dT%H%M%S}-{secrets.token_hex(3)}"


def record_run(report: Report, out_dir: Path, runs_path: Path | None = None) -> str:
    """Add a finished compile to the runs store ($EDGEQ_RUNS by default); returns the run id."""
    return RunStore(runs_path).record(report.to_dict(), Path(out_dir))
