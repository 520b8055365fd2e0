"""`native` resolves to the shipped CPU target this machine's ISA calls for."""

from __future__ import annotations

import platform
from pathlib import Path

from edgeq.targets import load_target


def _cpu_flags() -> set[str]:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            return set(value.split())
    return set()


def test_native_target_follows_the_cpu_flags() -> None:
    flags = _cpu_flags()
    spec = load_target("native")
    if platform.machine() in ("aarch64", "arm64"):
        assert spec.name == "cpu-arm64"
    elif flags & {"avx512_vnni", "avx_vnni", "amx_int8"}:
        assert spec.name == "cpu-x86-avx512vnni" and not spec.quantization.int8.weights.reduce_range
    else:
        assert spec.name == "cpu-x86-avx2" and spec.quantization.int8.weights.reduce_range
