"""The runs store: versioned schema, queries, regressions, safety under concurrent writers."""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import sqlite3
import time
from pathlib import Path

import pytest

from edgeq.store.runs import (
    RUN_ID_PATTERN,
    SCHEMA_VERSION,
    RunStore,
    StoreError,
    default_runs_path,
    record_run,
)

FIXTURES = Path(__file__).parent / "fixtures" / "reports"
RUN1, RUN2 = "20261126T093015-3fa9c1", "20261128T070102-ab12cd"


def load(name: str) -> dict:
    return json.loads((FIXTURES / name).read_text())


@pytest.fixture
def store(tmp_path: Path) -> RunStore:
    runs = RunStore(tmp_path / "runs.sqlite")
    for path in sorted(FIXTURES.glob("*.json")):
        runs.record(json.loads(path.read_text()))
    return runs


def test_schema_is_versioned_and_reopening_keeps_it(tmp_path: Path) -> None:
    path = tmp_path / "runs.sqlite"
    assert RunStore(path).schema_version() == SCHEMA_VERSION
    assert RunStore(path).schema_version() == SCHEMA_VERSION
    with sqlite3.connect(path) as connection:
        assert connection.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        connection.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    with pytest.raises(StoreError, match="schema version 99"):
        RunStore(path)


def test_default_path_follows_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EDGEQ_RUNS", str(tmp_path / "x.sqlite"))
    assert default_runs_path() == tmp_path / "x.sqlite"
    monkeypatch.delenv("EDGEQ_RUNS")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    assert default_runs_path() == tmp_path / "data" / "edgeq" / "runs.sqlite"


def test_record_indexes_headline_numbers(store: RunStore) -> None:
    runs = store.list_runs()
    assert [run.created for run in runs] == sorted(run.created for run in runs)
    first = store.summary(RUN1)
    assert first.model == "mrl_encoder" and first.target == "cpu-x86-avx2"
    assert first.speedup_b1 == pytest.approx(load("mrl_cpu_run1.json")["latency"][0]["speedup"])
    assert first.worst_cosine == pytest.approx(0.9991)
    assert first.task_drop == pytest.approx(0.4)
    assert first.size_ratio == pytest.approx(0.285, abs=1e-3)
    assert len(first.recipe_hash) == 12
    assert store.get(RUN1) == load("mrl_cpu_run1.json")
    assert store.get("nope") is None


def test_filters_and_history(store: RunStore) -> None:
    assert len(store.list_runs()) == 4
    assert {run.model for run in store.list_runs(target="cpu-x86-avx2")} == {
        "mrl_encoder",
        "binary_ae",
    }
    mrl_cpu = store.list_runs(model="mrl_encoder", target="cpu-x86-avx2")
    assert [run.run_id for run in mrl_cpu] == [RUN1, RUN2]
    assert len(store.list_runs(recipe=mrl_cpu[0].recipe_hash)) == 3
    history = store.history("mrl_encoder", "cpu-x86-avx2")
    assert [report["run_id"] for report in history] == [RUN1, RUN2]


def test_regressions_flag_the_slower_less_faithful_run(store: RunStore) -> None:
    (regression,) = store.regressions()
    assert (regression.run_id, regression.previous_run_id) == (RUN2, RUN1)
    assert [reason.split()[0] for reason in regression.reasons] == ["speedup", "worst", "task"]
    assert store.regressions(threshold=0.5, cosine_tolerance=0.01, drop_tolerance=2.0) == []


def test_rerecording_replaces_and_ids_are_checked(store: RunStore) -> None:
    report = load("mrl_cpu_run1.json")
    report["size_ratio"] = 0.5
    store.record(report)
    assert len(store.list_runs()) == 4
    assert store.summary(RUN1).size_ratio == 0.5
    with pytest.raises(ValueError, match="run_id"):
        store.record({**report, "run_id": "../../etc/passwd"})
    generated = store.record({k: v for k, v in report.items() if k not in ("run_id", "created")})
    assert RUN_ID_PATTERN.fullmatch(generated)


def test_record_run_points_at_the_report_html(tmp_path: Path) -> None:
    runs_path = tmp_path / "runs.sqlite"
    run_id = record_run(load("mrl_trt_jetson.json"), tmp_path / "out", runs_path)
    summary = RunStore(runs_path).summary(run_id)
    assert summary.html_path == str((tmp_path / "out" / "report.html").resolve())


def _record_many(path: str, worker: int, count: int) -> None:
    store = RunStore(path)
    report = load("binary_ae_cpu_no_task.json")
    for index in range(count):
        store.record({**report, "run_id": f"w{worker}-{index}", "created": f"2026-12-01T00:{index:02d}"})


def _record_forever(path: str) -> None:
    store = RunStore(path)
    report = load("mrl_cpu_run1.json")
    index = 0
    while True:
        store.record({**report, "run_id": f"k-{index}"})
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
    assert store.get(runs[-1].run_id)["model"]["name"] == "mrl_encoder"
    store.record(load("binary_ae_cpu_no_task.json"))
