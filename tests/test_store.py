"""The runs store: versioned schema, queries, regressions, safety under concurrent writers."""

from __future__ import annotations

import dataclasses
import json
import multiprocessing
import os
import signal
import sqlite3
import time
from pathlib import Path

import pytest

from edgeq.report.read import load_report, read_report
from edgeq.store.runs import (
    RUN_ID_PATTERN,
    SCHEMA_VERSION,
    RunStore,
    StoreError,
    default_runs_path,
    record_run,
)
from tests.typed_reports import rerun

FIXTURES = Path(__file__).parent / "fixtures" / "reports"
MRL = FIXTURES / "v1_mrl_cpu.json"
GATED = FIXTURES / "v1_binary_ae_gates.json"


@pytest.fixture
def store(tmp_path: Path) -> RunStore:
    runs = RunStore(tmp_path / "runs.sqlite")
    for path in sorted(FIXTURES.glob("*.json")):
        runs.record(load_report(path))
    return runs


def test_schema_is_versioned_and_reopening_keeps_it(tmp_path: Path) -> None:
    path = tmp_path / "runs.sqlite"
    assert RunStore(path).schema_version() == SCHEMA_VERSION == 3
    assert RunStore(path).schema_version() == SCHEMA_VERSION
    with sqlite3.connect(path) as connection:
        assert connection.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        connection.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    with pytest.raises(StoreError, match="schema version 99"):
        RunStore(path)


def test_a_version_1_store_gets_the_new_columns_from_its_reports(tmp_path: Path) -> None:
    path = tmp_path / "runs.sqlite"
    report = load_report(GATED)
    with sqlite3.connect(path) as connection:  # what edgeq wrote before schema version 2
        connection.executescript(
            "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT);"
            "INSERT INTO meta VALUES ('schema_version', '1');"
            "CREATE TABLE runs (run_id TEXT PRIMARY KEY, created TEXT NOT NULL, model TEXT NOT NULL,"
            " model_sha256 TEXT, target TEXT NOT NULL, recipe_hash TEXT, speedup_b1 REAL,"
            " worst_cosine REAL, task_drop REAL, size_ratio REAL, html_path TEXT, report_json TEXT NOT NULL);"
        )
        connection.execute(
            "INSERT INTO runs VALUES (?, ?, ?, NULL, ?, NULL, 1.3, 0.99, 0.2, 0.25, '/old/out/report.html',"
            " ?)",
            (report.run_id, report.created, report.model.name, report.target.name, GATED.read_text()),
        )
        connection.execute(
            "INSERT INTO runs VALUES ('broken', 'x', 'm', NULL, 't', NULL, NULL, NULL, NULL, NULL, NULL, '{')"
        )
    store = RunStore(path)
    assert store.schema_version() == 3
    summary = store.summary(report.run_id)
    assert summary.decision == report.decision.chosen and summary.gates_verdict == "pass"
    assert summary.slowest_speedup == report.slowest_speedup
    assert summary.report_path == "/old/out/report.json"
    assert (summary.bits, summary.mode, summary.prune) == (8, "auto", None)
    assert store.summary("broken").decision is None


def test_default_path_follows_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EDGEQ_RUNS", str(tmp_path / "x.sqlite"))
    assert default_runs_path() == tmp_path / "x.sqlite"
    monkeypatch.delenv("EDGEQ_RUNS")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    assert default_runs_path() == tmp_path / "data" / "edgeq" / "runs.sqlite"


def test_record_indexes_headline_numbers(store: RunStore) -> None:
    runs = store.list_runs()
    assert [run.created for run in runs] == sorted(run.created for run in runs)
    report = load_report(GATED)
    summary = store.summary(report.run_id)
    assert summary.model == "binary_ae/model" and summary.target == "cpu-x86-avx2"
    assert summary.model_sha256 == report.model.sha256 and len(summary.recipe_hash) == 12
    assert summary.decision == report.decision.chosen
    assert summary.speedups == {1: report.speedup(1), 32: report.speedup(32)}
    assert summary.speedup_b1 == report.speedup(1)
    assert summary.slowest_speedup == report.slowest_speedup
    assert summary.worst_cosine == report.worst_cosine and summary.task_drop == report.task_drop
    assert summary.size_ratio == report.size_ratio
    assert (summary.gates_passed, summary.gates_verdict) == (True, "pass")
    assert store.get(report.run_id) == report
    assert store.get("nope") is None
    ungated = store.summary(load_report(MRL).run_id)
    assert (ungated.gates_passed, ungated.gates_verdict) == (None, None)


def test_a_failed_gate_is_recorded_as_the_views_show_it(tmp_path: Path) -> None:
    data = json.loads(GATED.read_text())
    data["gates"][1]["limit"] = 100.0  # min_speedup; "passed": true stays in the file
    store = RunStore(tmp_path / "runs.sqlite")
    run_id = store.record(read_report(data))
    assert (store.summary(run_id).gates_passed, store.summary(run_id).gates_verdict) == (
        False,
        "FAIL: min_speedup",
    )


def test_filters_and_history(store: RunStore) -> None:
    assert len(store.list_runs()) == 6
    assert {run.model for run in store.list_runs(target="cpu-x86-avx2")} == {
        "mrl_encoder/model",
        "binary_ae/model",
        "tsp",
    }
    assert [run.target for run in store.list_runs(model="mrl_encoder/model")] == [
        "cpu-x86-avx2",
        "gpu-tensorrt",
        "cpu-x86-avx2",
    ]
    history = [store.get(run.run_id) for run in store.list_runs("mrl_encoder/model", "cpu-x86-avx2")]
    assert [report.decision.chosen for report in history] == ["int8-static-per-tensor", "int4-planned"]
    recipe = store.summary(load_report(MRL).run_id).recipe_hash
    assert [run.run_id for run in store.list_runs(recipe=recipe)] == [load_report(MRL).run_id]


def test_regressions_flag_the_slower_less_faithful_run(tmp_path: Path) -> None:
    store = RunStore(tmp_path / "runs.sqlite")
    first = load_report(GATED)
    store.record(first)
    store.record(rerun(first, "20261202T090000-beef01", slower=1.5, cosine_lost=0.01, points_lost=2.0))
    (regression,) = store.regressions()
    assert (regression.run_id, regression.previous_run_id) == ("20261202T090000-beef01", first.run_id)
    assert [reason.split()[0] for reason in regression.reasons] == ["speedup", "worst", "task"]
    assert store.regressions(threshold=0.5, cosine_tolerance=0.02, drop_tolerance=3.0) == []


def test_a_changed_recipe_or_model_starts_a_new_series_not_a_regression(tmp_path: Path) -> None:
    store = RunStore(tmp_path / "runs.sqlite")
    first = load_report(GATED)
    store.record(first)
    int4 = rerun(first, "20261202T090000-4b175a", slower=1.5, cosine_lost=0.01, points_lost=2.0)
    store.record(dataclasses.replace(int4, recipe={**first.recipe, "bits": 4}))
    retrained = rerun(first, "20261202T100000-7e7a1d", slower=1.5, cosine_lost=0.01, points_lost=2.0)
    model = dataclasses.replace(first.model, sha256="0" * 64)  # same name, other weights
    store.record(dataclasses.replace(retrained, model=model))
    assert store.regressions() == []
    assert store.summary("20261202T090000-4b175a").bits == 4
    same = rerun(first, "20261202T110000-5a3e00", slower=1.5, cosine_lost=0.0, points_lost=0.0)
    store.record(same)
    (regression,) = store.regressions()
    assert (regression.run_id, regression.previous_run_id) == (same.run_id, first.run_id)


def test_recipe_columns_say_what_a_run_did(tmp_path: Path) -> None:
    store = RunStore(tmp_path / "runs.sqlite")
    pruned = load_report(FIXTURES / "v1_binary_ae_pruned.json")
    store.record(pruned)
    summary = store.summary(pruned.run_id)
    assert (summary.bits, summary.mode, summary.prune) == (8, "auto", "ifm β=0.25 max 0.2")


def test_rerecording_replaces_and_ids_are_checked(store: RunStore) -> None:
    report = load_report(MRL)
    store.record(dataclasses.replace(report, size_ratio=0.5))
    assert len(store.list_runs()) == 6
    assert store.summary(report.run_id).size_ratio == 0.5
    with pytest.raises(ValueError, match="run_id"):
        store.record(dataclasses.replace(report, run_id="../../etc/passwd"))
    assert RUN_ID_PATTERN.fullmatch(report.run_id)


def test_record_run_points_at_the_report_files(tmp_path: Path) -> None:
    runs_path = tmp_path / "runs.sqlite"
    run_id = record_run(load_report(FIXTURES / "v1_mrl_tensorrt.json"), tmp_path / "out", runs_path)
    summary = RunStore(runs_path).summary(run_id)
    assert summary.html_path == str((tmp_path / "out" / "report.html").resolve())
    assert summary.report_path == str((tmp_path / "out" / "report.json").resolve())
    assert summary.speedups == {} and summary.speedup_b1 is None


def _record_many(path: str, worker: int, count: int) -> None:
    store = RunStore(path)
    report = load_report(GATED)
    for index in range(count):
        store.record(
            dataclasses.replace(report, run_id=f"w{worker}-{index}", created=f"2026-12-01T00:{index:02d}")
        )


def _record_forever(path: str) -> None:
    store = RunStore(path)
    report = load_report(MRL)
    index = 0
    while True:
        store.record(dataclasses.replace(report, run_id=f"k-{index}"))
        index += 1


def _integrity(path: Path) -> str:
    with sqlite3.connect(path) as connection:
        return connection.execute("PRAGMA integrity_check").fetchone()[0]


def test_concurrent_writers_do_not_lose_or_corrupt_runs(tmp_path: Path) -> None:
    path = tmp_path / "runs.sqlite"
    context = multiprocessing.get_context("fork")
    workers = [context.Process(target=_record_many, args=(str(path), n, 15)) for n in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(30)
        assert worker.exitcode == 0
    assert len(RunStore(path).list_runs()) == 60
    assert _integrity(path) == "ok"


def test_killed_writer_leaves_a_readable_store(tmp_path: Path) -> None:
    path = tmp_path / "runs.sqlite"
    store = RunStore(path)
    writer = multiprocessing.get_context("fork").Process(target=_record_forever, args=(str(path),))
    writer.start()
    deadline = time.monotonic() + 10
    while len(store.list_runs()) < 5 and time.monotonic() < deadline:
        time.sleep(0.02)
    os.kill(writer.pid, signal.SIGKILL)
    writer.join()
    runs = store.list_runs()
    assert len(runs) >= 5
    assert _integrity(path) == "ok"
    assert store.get(runs[-1].run_id).model.name == "mrl_encoder/model"
    store.record(load_report(GATED))
