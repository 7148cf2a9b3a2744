"""The README's "Using it through Feast" and "Homefeed through Feast" sections, run verbatim: after a small demo,
in a temporary copy of the repository, against a real redis-server that the section's own `searchsage redis
start` starts on a free port (the only substitutions are environment variables: SEARCHSAGE_REDIS,
SEARCHSAGE_HOME, PATH). The two shell blocks run in one bash exactly as written (the homefeed one continues the
Feast one's shell); the Python block of the Feast section runs after them in a new process."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from encoders.cli.main import main
from encoders.localredis.server import free_port, ping

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
DEMO_DB = 14
pytestmark = pytest.mark.slow


def section_blocks(readme: str, title: str = "Using it through Feast") -> tuple[str, str | None]:
    """(first ```bash block, first ```python block or None) of the README section ``## title``."""
    start = readme.index(f"## {title}\n")
    end = readme.find("\n## ", start + 1)
    section = readme[start : end if end > 0 else len(readme)]
    bash = re.search(r"```bash\n(.*?)```", section, re.S)
    python = re.search(r"```python\n(.*?)```", section, re.S)
    assert bash, f"the README's section {title!r} lost its shell block"
    return bash.group(1), python.group(1) if python else None


def feast_section_blocks(readme: str) -> tuple[str, str]:
    """(first ```bash block, first ```python block) of the section "Using it through Feast"."""
    bash, python = section_blocks(readme)
    assert python, "the README's Feast section lost its Python block"
    return bash, python


def test_readme_feast_section_runs_verbatim(tmp_path: Path, tiny_bert_dir: Path, redis_server,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    import redis

    readme = (ROOT / "README.md").read_text()
    shell, python = feast_section_blocks(readme)
    homefeed, _ = section_blocks(readme, "Homefeed through Feast")
    clone = tmp_path / "clone"
    clone.mkdir()
    shutil.copytree(ROOT / "feature_repo", clone / "feature_repo", ignore=shutil.ignore_patterns("data", "__pycache__"))
    shutil.copy(ROOT / "README.md", clone / "README.md")

    # the small demo, as the section assumes (its own Redis: the session server's database DEMO_DB)
    for k in ("SEARCHSAGE_BUNDLE", "SEARCHSAGE_EMBEDDING_DIM", "SEARCHSAGE_ENCODER_THREADS"):
        monkeypatch.setenv(k, "")  # restored after the test: the demo exports its own into os.environ
    monkeypatch.setenv("SEARCHSAGE_REDIS", f"{redis_server.connection_string},db={DEMO_DB}")
    redis.Redis(host=redis_server.host, port=redis_server.port, db=DEMO_DB).flushdb()
    monkeypatch.chdir(clone)
    assert main(["demo", "--small", "--workdir", "runs/demo", "--base-model", str(tiny_bert_dir), "--users", "300",
                 "--threads", "1"]) == 0
    monkeypatch.chdir(tmp_path)

    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SEARCHSAGE_")}
    env.update(PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}", SEARCHSAGE_REDIS=f"127.0.0.1:{port}",
               SEARCHSAGE_HOME=str(tmp_path / "home"), OMP_NUM_THREADS="1")
    script = f"set -euo pipefail\n{shell}\n{homefeed}\npython - <<'README_PYTHON'\n{python}README_PYTHON\n"
    try:
        run = subprocess.run(["bash", "-c", script], cwd=clone, env=env, capture_output=True, text=True, timeout=400)
        assert run.returncode == 0, f"README block failed:\n{run.stdout[-3000:]}\n{run.stderr[-5000:]}"
        assert "Traceback" not in run.stderr
        out = run.stdout
        assert "pins: 500 new, 0 changed, 0 unchanged, 500 with their own embedding" in out
        feast_out = out.split("user: 'u042'")[0]  # the Feast section's query ranking, before the homefeed one
        ranked = [ln.split() for ln in feast_out.splitlines() if re.match(r"^\s+\d+\s+-?\d\.\d{4}\s+p\d{6}\s", ln)]
        assert "query: 'angle bracket'" in out and len(ranked) == 10
        scores = [float(r[1]) for r in ranked]
        assert scores == sorted(scores, reverse=True)
        # the homefeed section: the demo's users into the repository, materialised, one user ranked
        assert "users: 300 new, 0 with new events, 0 unchanged" in out
        assert "user: 'u042' (homefeed vector from the store, model homefeed-run-" in out
        user_block = out.split("user: 'u042'")[1].splitlines()[1:11]
        assert len(user_block) == 10 and all(re.match(r"^\s+\d+\s+-?\d\.\d{4}\s+p\d{6}\s", ln) for ln in user_block)

        # the pins' own frozen vectors were materialised as they are, bit for bit
        from feast import FeatureStore

        from encoders.redis_records.embeddings import EmbeddingStore

        monkeypatch.setenv("SEARCHSAGE_REDIS", f"127.0.0.1:{port}")
        table = pq.read_table(clone / "runs/demo/data/pins.parquet", columns=["pin_id", "embedding"])
        want = np.asarray(table.column("embedding").to_pylist(), dtype=np.float32)
        got, found = EmbeddingStore.from_store(FeatureStore(repo_path=str(clone / "feature_repo")),
                                               "pin_embedding").fetch(
            table.column("pin_id").to_pylist())
        assert found.all() and got.tobytes() == want.tobytes()
        assert len(list((clone / "feature_repo/data/pin_index").iterdir())) == 1

        # ingest again: nothing changes
        again = subprocess.run(["searchsage", "feast", "ingest", "--repo", "feature_repo", "--pins",
                                "runs/demo/data/pins.parquet"], cwd=clone, env=env, capture_output=True, text=True)
        assert again.returncode == 0 and "0 new, 0 changed, 500 unchanged" in again.stdout
        # the user vectors the README materialised are the demo's own (same bundle, same events, same as-of)
        users = EmbeddingStore.from_store(FeatureStore(repo_path=str(clone / "feature_repo")), "user_embedding")
        ids = [f"u{i:03d}" for i in range(300)]
        mine, found = users.fetch(ids)
        assert found.all()
        monkeypatch.setenv("SEARCHSAGE_REDIS", f"{redis_server.connection_string},db={DEMO_DB}")
        demo, demo_found = EmbeddingStore.from_store(FeatureStore(repo_path=str(clone / "runs/demo/feature_repo")),
                                                     "user_embedding").fetch(ids)
        assert demo_found.all() and mine.tobytes() == demo.tobytes()
    finally:
        # `searchsage redis stop`, from another directory, stops what the block started
        stop = subprocess.run(["searchsage", "redis", "stop"], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert stop.returncode == 0 and "stopped redis-server pid" in stop.stdout, stop.stdout + stop.stderr
    assert not ping("127.0.0.1", port)
