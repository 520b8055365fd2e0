"""Recording a run never fails a compile: every store problem is a warning, the exit code unchanged."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from tests.adversarial.helpers import compile_api
from tests.bad_inputs.cli import leftovers, run_edgeq
from tests.conftest import Corpus


def _store_warning(out: Path) -> str:
    (warning,) = [
        w for w in json.loads((out / "report.json").read_text())["warnings"] if w["source"] == "runs store"
    ]
    return warning["message"]


@pytest.mark.parametrize("kind", ["text-file", "directory", "truncated-database"])
def test_a_runs_store_that_is_not_a_database_costs_only_the_record(
    corpus: Corpus, tmp_path: Path, kind: str
) -> None:
    store = tmp_path / "runs.sqlite"
    if kind == "text-file":
        store.write_text("these are my notes, not a database\n" * 100)
    elif kind == "directory":
        store.mkdir()
    else:
        with sqlite3.connect(store) as connection:
            connection.execute("CREATE TABLE t (x)")
        store.write_bytes(store.read_bytes()[:200])
    out = tmp_path / "out"
    result = compile_api(corpus, out, runs=store)
    assert result.out_dir == out and leftovers(out) == [out]
    assert "runs store not updated" in _store_warning(out)
    if kind == "text-file":
        assert store.read_text().startswith("these are my notes"), "the user's file is untouched"


def test_an_unusable_data_dir_is_a_warning_and_exit_zero_on_the_command_line(
    corpus: Corpus, tmp_path: Path
) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the data dir would be")
    out = tmp_path / "out"
    args = ["compile", corpus.model, "--calib", corpus.calib, "--target", corpus.target, "-o", out]
    result = run_edgeq(*args, cwd=tmp_path, env={"EDGEQ_RUNS": "", "XDG_DATA_HOME": str(blocker)})
    assert result.returncode == 0, result.stderr
    assert "runs store not updated" in result.stderr and "runs store not updated" in _store_warning(out)


def test_a_lock_held_past_the_timeout_is_a_warning(
    corpus: Corpus, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = tmp_path / "runs.sqlite"
    compile_api(corpus, tmp_path / "first", runs=store)
    monkeypatch.setenv("EDGEQ_RUNS_TIMEOUT_S", "0.2")
    holder = sqlite3.connect(store, isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        out = tmp_path / "out"
        compile_api(corpus, out, runs=store)
        assert "locked" in _store_warning(out)
    finally:
        holder.execute("ROLLBACK")
        holder.close()


def test_a_bad_lock_timeout_setting_is_a_warning_too(
    corpus: Corpus, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EDGEQ_RUNS_TIMEOUT_S", "forever")
    out = tmp_path / "out"
    compile_api(corpus, out)
    assert "EDGEQ_RUNS_TIMEOUT_S" in _store_warning(out)
