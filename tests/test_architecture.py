"""The layout's promises, checked in every test run (CI runs only ``make test``):
the import-linter contracts in pyproject.toml hold, and the front end's JSDoc
types check with TypeScript's checker."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _run(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603
        [str(a) for a in args], cwd=ROOT, capture_output=True, text=True, check=False
    )


def test_import_contracts_are_kept():
    done = _run(Path(sys.executable).parent / "lint-imports", "--no-cache")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 broken" in done.stdout


def test_front_end_types_check():
    done = _run(ROOT / "node_modules" / ".bin" / "tsc", "-p", "web")
    assert done.returncode == 0, done.stdout + done.stderr
