"""`feast -c feature_repo apply` (which changes directory into the repository) with a relative
SEARCHSAGE_BUNDLE: a bad one is one line naming the variable and where it was looked for, not a
traceback (`plan` imports definitions.py after changing directory, exactly like `apply`; a D mismatch
takes the same one-line path)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FEAST = str(Path(sys.executable).with_name("feast"))
pytestmark = pytest.mark.slow


def test_apply_error_on_a_relative_bundle_is_one_line_naming_where_it_looked(tmp_path: Path) -> None:
    shutil.copytree(ROOT / "feature_repo", tmp_path / "feature_repo", ignore=shutil.ignore_patterns("data", "__pycache__"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("SEARCHSAGE_")}
    env.update(SEARCHSAGE_REDIS="127.0.0.1:1", PWD=str(tmp_path))  # as a shell in tmp_path would set it

    bad = subprocess.run([FEAST, "-c", "feature_repo", "plan"], cwd=tmp_path, capture_output=True, text=True,
                         env={**env, "SEARCHSAGE_BUNDLE": "runs/nope"}, timeout=240)
    assert bad.returncode == 1 and "Traceback" not in bad.stderr
    assert bad.stderr.strip() == (f"error: SEARCHSAGE_BUNDLE=runs/nope: no such directory ({tmp_path.resolve()}/runs/nope); "
                                  "point it at the output of `searchsage export` (relative paths are taken from the "
                                  "directory you run the command in)")
    # (a good relative bundle through the real `feast -c feature_repo apply`: tests/feature_repo/test_readme_feast.py)
