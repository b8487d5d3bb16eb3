"""The package is typed: its stubs match the compiled module, and a typed app
using the documented API passes mypy --strict."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def _mypy(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", *args], capture_output=True, text=True, timeout=300)


def test_stubs_match_the_compiled_module():
    r = _mypy("mypy.stubtest", "livegate._livegate")
    assert r.returncode == 0, r.stdout + r.stderr


def test_a_typed_app_passes_mypy_strict():
    r = _mypy("mypy", "--strict", "--no-incremental", str(HERE / "typed_usage.py"))
    assert r.returncode == 0, r.stdout + r.stderr


def test_the_package_passes_mypy_strict():
    r = _mypy("mypy", "--strict", "--no-incremental", "-p", "livegate")
    assert r.returncode == 0, r.stdout + r.stderr
