"""The import rules of docs/architecture.md, as import-linter contracts (pyproject.toml).

Running `lint-imports` here makes `uv run pytest` enforce them, as CI does.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_import_contracts_are_kept() -> None:
    exe = shutil.which("lint-imports", path=str(Path(sys.executable).parent))
    assert exe, "lint-imports not found next to the interpreter: run `uv sync`"
    done = subprocess.run(
        [exe, "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    broken = done.stdout[done.stdout.find("Contracts") :]
    assert done.returncode == 0, f"import contracts broken:\n{broken}\n{done.stderr}"
