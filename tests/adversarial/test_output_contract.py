"""The output directory is a contract: nothing a user put there is lost, whatever happens meanwhile."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from edgeq.errors import InputError
from edgeq.outdir import staged_output
from tests.adversarial.helpers import compile_api, evaluator_module, stored_paths
from tests.bad_inputs.cli import assert_refused, compile_args, leftovers, run_edgeq
from tests.conftest import Corpus

OK = 'return TaskResult("t", [TaskMetric("m", 1.0, 1.0)], ["m"])'


def test_an_output_that_appears_meanwhile_is_kept_and_ours_goes_beside_it(
    corpus: Corpus, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, isolated_runs_store: Path
) -> None:
    out = tmp_path / "out"
    body = f"import pathlib\nd = pathlib.Path({str(out)!r})\nd.mkdir(exist_ok=True)\n"
    body += "(d / 'notes.txt').write_text('saved meanwhile')\n" + OK
    task = evaluator_module(monkeypatch, tmp_path, "appear_task", body)
    with pytest.raises(InputError, match="appeared or changed while this compile ran") as refused:
        compile_api(corpus, out, task={"name": task})
    kept = refused.value.kept
    assert (out / "notes.txt").read_text() == "saved meanwhile" and sorted(os.listdir(out)) == ["notes.txt"]
    assert str(kept) in str(refused.value) and (kept / "report.json").is_file()
    assert leftovers(out) == [out]
    ((_, recorded),) = stored_paths(isolated_runs_store)
    assert Path(recorded) == kept.resolve() / "report.json", "the record names where the files are"


def test_force_does_not_replace_an_output_swapped_meanwhile(
    corpus: Corpus, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "out"
    compile_api(corpus, out)
    body = f"import pathlib, shutil\nd = pathlib.Path({str(out)!r})\nshutil.rmtree(d)\nd.mkdir()\n"
    body += "(d / 'report.json').write_text('{}')\n(d / 'mine.txt').write_text('new work')\n" + OK
    task = evaluator_module(monkeypatch, tmp_path, "swap_task", body)
    with pytest.raises(InputError, match="appeared or changed while"):
        compile_api(corpus, out, task={"name": task}, force=True)
    assert (out / "mine.txt").read_text() == "new work"


def test_a_second_compile_to_a_locked_output_refuses(corpus: Corpus, tmp_path: Path) -> None:
    out = tmp_path / "out"
    with staged_output(out) as staging:  # a compile in progress holds the output's lock
        (staging / "report.json").write_text("{}")
        result = run_edgeq(*compile_args(corpus), "-o", out, cwd=tmp_path)
        assert_refused(result, None, "another edgeq compile", str(os.getpid()))
    assert json.loads((out / "report.json").read_text()) == {}, "the first compile's output stands"
    assert leftovers(out) == [out]


def test_force_refuses_when_an_input_lives_inside_the_output(corpus: Corpus, tmp_path: Path) -> None:
    out = tmp_path / "out"
    compile_api(corpus, out)
    calib = out / "calib.npz"
    shutil.copy(corpus.calib, calib)
    result = run_edgeq(*compile_args(corpus, None, calib, "--force"), "-o", out, cwd=tmp_path)
    assert_refused(result, None, "--force would delete", "calib.npz")
    assert calib.is_file() and (out / "report.json").is_file()


def test_a_dangling_symlink_output_is_created_where_it_points(corpus: Corpus, tmp_path: Path) -> None:
    real, link = tmp_path / "real-out", tmp_path / "link"
    link.symlink_to(real)
    compile_api(corpus, link)
    assert link.is_symlink() and (real / "report.json").is_file()
    assert leftovers(real) == [real] and leftovers(link) == [link]


@pytest.mark.skipif(not Path("/dev/shm").is_dir(), reason="needs /dev/shm (another filesystem)")
def test_a_symlink_to_another_filesystem_with_force_leaves_nothing_behind(
    corpus: Corpus, tmp_path: Path
) -> None:
    real = Path(os.environ.get("EDGEQ_TEST_SHM", "/dev/shm")) / f"edgeq-adversarial-{os.getpid()}"
    link = tmp_path / "link"
    link.symlink_to(real)
    try:
        compile_api(corpus, link)
        compile_api(corpus, link, force=True)
        assert link.is_symlink() and (real / "report.json").is_file()
        assert leftovers(real) == [real] and leftovers(link) == [link]
    finally:
        shutil.rmtree(real, ignore_errors=True)


def test_two_compiles_in_a_row_to_one_output_never_both_succeed(corpus: Corpus, tmp_path: Path) -> None:
    out = tmp_path / "out"
    first = compile_api(corpus, out)
    with pytest.raises(InputError, match="already exists"):
        compile_api(corpus, out)
    assert json.loads((out / "report.json").read_text())["run_id"] == first.report.run_id


def test_notes_saved_into_the_output_during_a_force_compile_are_kept(
    corpus: Corpus, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "out"
    compile_api(corpus, out)
    body = f"import pathlib\n(pathlib.Path({str(out)!r}) / 'notes.txt').write_text('my notes')\n" + OK
    task = evaluator_module(monkeypatch, tmp_path, "notes_task", body)
    with pytest.raises(InputError, match="appeared or changed while") as refused:
        compile_api(corpus, out, task={"name": task}, force=True)
    assert (out / "notes.txt").read_text() == "my notes" and (refused.value.kept / "report.json").is_file()
