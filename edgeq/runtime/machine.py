"""Describe the machine a measurement ran on, so numbers can be read in context."""

from __future__ import annotations

import os
import platform
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

import onnxruntime as ort

INTERESTING_FLAGS = (
    "sse4_2",
    "avx",
    "avx2",
    "fma",
    "avx512f",
    "avx512_vnni",
    "avx_vnni",
    "amx_int8",
    "asimd",
    "asimddp",
    "i8mm",
    "sve",
)
INT8_DOT_FLAGS = frozenset({"avx512_vnni", "avx_vnni", "amx_int8"})
"""x86 8-bit dot-product instructions: with one, u8 x s8 products accumulate in int32, never int16."""
PACKAGES = ("onnxruntime", "onnx", "numpy", "torch", "onnxruntime-gpu", "tensorrt")


@dataclass
class Machine:
    """The machine a measurement ran on: numbers are read in its context."""

    cpu: str
    arch: str
    flags: list[str]
    cores: int | None
    os: str
    python: str
    versions: dict[str, str | None]
    providers: list[str] = field(default_factory=list)  # ONNX Runtime's, on this machine
    gpu: str | None = None


def describe_machine() -> Machine:
    """CPU model and relevant ISA flags, core count, OS, Python, runtime versions and the execution
    providers this ONNX Runtime has (what any latency in the report can have run on)."""
    cpu, flags = _cpuinfo()
    versions = {}
    for package in PACKAGES:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            continue
    return Machine(
        cpu=cpu or platform.processor() or platform.machine(),
        arch=platform.machine(),
        flags=[f for f in INTERESTING_FLAGS if f in flags],
        cores=os.cpu_count(),
        os=platform.platform(),
        python=platform.python_version(),
        versions=versions,
        providers=ort.get_available_providers(),
    )


FLAG_ALIASES = {"neon": "asimd"}  # what a target YAML calls it -> what aarch64's /proc/cpuinfo says


def lacking_isa(isa: list[str]) -> list[str]:
    """The flags of `isa` (a target's declared instruction sets) this CPU lacks; none where the CPU's
    flags cannot be read (no /proc/cpuinfo), so nothing is claimed that was not seen."""
    _, flags = _cpuinfo()
    if not flags:
        return []
    return [flag for flag in isa if FLAG_ALIASES.get(flag, flag) not in flags]


def _cpuinfo() -> tuple[str, set[str]]:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return "", set()
    model, flags = "", set()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key == "model name" and not model:
            model = value.strip()
        elif key in ("flags", "Features") and not flags:
            flags = set(value.split())
    return model, flags
