"""Runs as Ray tasks: each compiles on a node in a folder of its own and sends the output back.

A run whose target some node advertises (the custom resource `edgeq-target:<target>`, e.g.
`ray start --resources '{"edgeq-target:cpu-x86-avx512vnni": 1}'`) is placed on such a node, so its
latency is measured on the target's own hardware; on each node one compile measures at a time.
"""

from __future__ import annotations

import io
import os
import shutil
import tarfile
import tempfile
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from edgeq.errors import InputError
from edgeq.sweep.runs import RunResult, compile_run, worker_setup
from edgeq.sweep.spec import RunSpec

RESOURCE = "edgeq-target:{target}"
NODE_TIMING_LOCK = Path(tempfile.gettempdir()) / "edgeq-timing.lock"


def _ray() -> Any:
    try:
        import ray
    except ImportError:
        raise InputError("--ray needs the ray package: pip install 'edgeq[ray]'") from None
    return ray


def target_resource(run: RunSpec) -> str:
    """The custom resource a node advertises to take the runs of the run's target (as the sweep names it)."""
    return RESOURCE.format(target=run.target_name)


def run_ray(runs: Sequence[RunSpec], out: Path, address: str, cache: bool = True) -> Iterator[RunResult]:
    """Each run's result as it finishes; its output is unpacked into `out/<run.folder>`."""
    ray = _ray()
    if not ray.is_initialized():
        package_parent = str(Path(__file__).resolve().parents[2])
        runtime_env = {
            "env_vars": {
                "PYTHONPATH": os.pathsep.join(filter(None, [package_parent, os.environ.get("PYTHONPATH")]))
            }
        }
        ray.init(address=address, runtime_env=runtime_env, log_to_driver=False)
    advertised = set(ray.cluster_resources())
    task = ray.remote(_compile_on_node)
    pending = {}
    for run in runs:
        resource = target_resource(run)
        options = {"resources": {resource: 0.001}} if resource in advertised else {}
        pending[task.options(num_cpus=1, **options).remote(run, cache)] = run
    while pending:
        (ready,), _ = ray.wait(list(pending), num_returns=1)
        run = pending.pop(ready)
        try:
            result, archive = ray.get(ready)
        except Exception as exc:  # noqa: BLE001 - a lost node or worker costs this run only
            yield RunResult(run, None, f"ray task failed: {type(exc).__name__}: {str(exc).splitlines()[0]}")
            continue
        if archive is not None:
            _unpack(archive, out / run.folder)
        yield result


def _compile_on_node(run: RunSpec, cache: bool) -> tuple[RunResult, bytes | None]:
    """In a Ray worker: compile into a private folder, return the result and the output as a tar."""
    worker_setup(str(NODE_TIMING_LOCK))
    scratch = Path(tempfile.mkdtemp(prefix="edgeq-sweep-"))
    try:
        result = compile_run(run, scratch, cache)
        if result.folder is None:
            return result, None
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w") as archive:
            archive.add(scratch / run.folder, arcname=".")
        return result, buffer.getvalue()
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _unpack(archive: bytes, folder: Path) -> None:
    """Unpacked beside `folder` and renamed into place: a killed sweep leaves no half output."""
    staging = folder.parent / f".{folder.name}.unpack-{uuid.uuid4().hex[:8]}"
    staging.mkdir(parents=True)
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(staging, filter="data")
    if folder.exists():
        shutil.rmtree(folder)
    os.rename(staging, folder)
