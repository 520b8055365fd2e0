"""Describe the machine a measurement ran on, so numbers can be read in context."""

from __future__ import annotations

import os
import platform
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
PACKAGES = ("onnxruntime", "onnx", "numpy", "torch", "onnxruntime-gpu", "tensorrt")


def describe_machine() -> dict:
    """CPU model and relevant ISA flags, core count, OS, Python, runtime versions and the execution
    providers this ONNX Runtime has (what any latency in the report can have run on)."""
    cpu, flags = _cpuinfo()
    versions = {}
    for package in PACKAGES:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            continue
    return {
        "cpu": cpu or platform.processor() or platform.machine(),
        "arch": platform.machine(),
        "flags": [f for f in INTERESTING_FLAGS if f in flags],
        "cores": os.cpu_count(),
        "os": platform.platform(),
        "python": platform.python_version(),
        "versions": versions,
        "onnxruntime_providers": ", ".join(ort.get_available_providers()),
    }


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
