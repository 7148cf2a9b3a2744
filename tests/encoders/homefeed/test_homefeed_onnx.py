"""ONNX export of the user tower: onnxruntime matches torch on real features, and the scorer needs no torch."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from encoders.homefeed.dataset import load_homefeed
from encoders.homefeed.embed import embed_requests
from encoders.homefeed.onnx_export import export_user_tower
from encoders.homefeed.onnx_scorer import OnnxUserScorer
from encoders.homefeed.run import load_run


@pytest.fixture(scope="module")
def bundle(tiny_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("homefeed_onnx") / "bundle"
    export_user_tower(tiny_run, out)
    return out


def test_manifest_and_parity_at_export(bundle: Path, tiny_run: Path) -> None:
    m = json.loads((bundle / "manifest.json").read_text())
    assert m["kind"] == "homefeed_user" and m["parity"]["max_abs_diff"] <= 1e-4
    assert m["model_version"] == load_run(tiny_run).model_version
    assert {"model.onnx", "vocab.json", "tower_config.json"} <= {p.name for p in bundle.iterdir()}


def test_onnx_scorer_matches_torch_on_every_user(bundle: Path, tiny_run: Path, tiny_homefeed: Path) -> None:
    run, data = load_run(tiny_run), load_homefeed(tiny_homefeed)
    users = np.arange(data.log.n_users)
    rows = data.pin_interest_rows(run.interest_vocab)
    cond = np.where(users % 3 == 0, rows[users % len(rows)], 0)  # a third conditioned on some interest
    torch_vectors = embed_requests(run, data, users, run.split, cond, batch_size=37)
    scorer = OnnxUserScorer(bundle)
    onnx_vectors = scorer.embed_users(data, users, run.split, cond, batch_size=50)
    assert onnx_vectors.shape == torch_vectors.shape == (data.log.n_users, data.dim)
    assert np.abs(onnx_vectors - torch_vectors).max() <= 1e-4
    assert scorer.dim == data.dim and scorer.history == run.config.history


def test_scorer_imports_no_torch(bundle: Path, tiny_homefeed: Path) -> None:
    code = (
        "import sys, numpy as np\n"
        "from encoders.homefeed.dataset import load_homefeed\n"
        "from encoders.homefeed.onnx_scorer import OnnxUserScorer\n"
        f"s = OnnxUserScorer({str(bundle)!r}); d = load_homefeed({str(tiny_homefeed)!r})\n"
        "v = s.embed_users(d, np.arange(5), s.split)\n"
        "assert v.shape == (5, s.dim)\n"
        "print('torch' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_scorer_rejects_another_bundle(tmp_path: Path) -> None:
    (tmp_path / "manifest.json").write_text(json.dumps({"kind": "query"}))
    with pytest.raises(ValueError, match="not a homefeed user bundle"):
        OnnxUserScorer(tmp_path)
