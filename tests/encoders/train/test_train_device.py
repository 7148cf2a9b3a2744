"""``--device`` and ``--precision``: the CPU path everywhere, the CUDA path where a GPU exists."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
import torch

from encoders.data.schema import write_table
from encoders.train.config import TrainConfig, parse_device
from encoders.train.device import Precision, resolve_device
from encoders.train.trainer import train

NO_CUDA = not torch.cuda.is_available()


def test_device_text_and_resolution() -> None:
    assert [parse_device(x) for x in ("auto", "cpu", "cuda", "cuda:1")] == ["auto", "cpu", "cuda", "cuda:1"]
    for bad in ("gpu", "cuda:", "cuda:x", "CPU"):
        with pytest.raises(ValueError, match="expected auto, cpu, cuda or cuda:N"):
            parse_device(bad)
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type == ("cpu" if NO_CUDA else "cuda")
    if NO_CUDA:
        with pytest.raises(ValueError, match="--device cuda: CUDA is not available"):
            resolve_device("cuda")
    else:
        assert resolve_device("cuda", local_rank=0) == torch.device("cuda", 0)
        with pytest.raises(ValueError, match="every torchrun rank on one GPU"):
            resolve_device("cuda:0", local_rank=1)


def test_fp16_needs_cuda() -> None:
    with pytest.raises(ValueError, match="--precision fp16 needs a CUDA --device"):
        Precision("fp16", torch.device("cpu"))
    with pytest.raises(ValueError, match="--precision needs a CUDA --device"):
        TrainConfig(data="d", out="o", precision="fp16")  # the default device is the CPU
    assert Precision("bf16", torch.device("cpu")).autocast().fast_dtype == torch.bfloat16
    assert Precision("fp32", torch.device("cpu")).scaler is None


def test_cli_device_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from encoders.cli.main import main

    with pytest.raises(SystemExit) as exc:
        main(["train", "--data", str(tmp_path), "--out", str(tmp_path / "r"), "--device", "gpu"])
    assert exc.value.code == 2 and "--device: expected auto, cpu, cuda or cuda:N" in capsys.readouterr().err
    rc = main(["train", "--data", str(tmp_path), "--out", str(tmp_path / "r"), "--precision", "fp16"])
    assert rc == 2 and "--precision needs a CUDA --device" in capsys.readouterr().err
    assert "--device auto|cpu|cuda[:N]" in _help(capsys)


def _help(capsys: pytest.CaptureFixture[str]) -> str:
    from encoders.cli.main import main

    with pytest.raises(SystemExit):
        main(["train", "--help"])
    return capsys.readouterr().out


def _dataset(root: Path, dim: int = 32) -> Path:
    from datetime import datetime, timezone

    words = ["chair", "table", "lamp", "door", "window", "floor", "tile", "paint"]
    rng = np.random.default_rng(0)
    emb = rng.normal(size=(len(words), dim)).astype(np.float32)
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    write_table(pa.table({"pin_id": [f"p{i}" for i in range(len(words))], "text": words,
                          "embedding": pa.array(emb.tolist(), pa.list_(pa.float32()))}), root / "pins.parquet", "pins")
    rows = [(f"{c} {w}", f"p{i}") for i, w in enumerate(words) for c in ("red", "blue", "green", "oak")]
    ts = datetime(2024, 1, 1, tzinfo=timezone.utc)
    write_table(pa.table({"query": [r[0] for r in rows], "pin_id": [r[1] for r in rows], "task": ["shopping"] * len(rows),
                          "action": ["save"] * len(rows), "timestamp": pa.array([ts] * len(rows),
                                                                              pa.timestamp("us", tz="UTC"))}),
                root / "engagements.parquet", "engagements")
    return root


@pytest.mark.skipif(NO_CUDA, reason="needs a CUDA GPU (torch.cuda.is_available() is False here)")
@pytest.mark.parametrize("precision", ["fp32", "bf16", "fp16"])
def test_cuda_training_runs_and_resumes(tmp_path: Path, tiny_bert_dir: Path, precision: str) -> None:
    data = _dataset(tmp_path / "data")
    kw = dict(data=str(data), base_model=str(tiny_bert_dir), batch_size=8, lr=1e-3, readout_lr=1e-2, log_every=1,
              progress=False, threads=1, device="cuda", precision=precision, schedule_steps=6, random_negatives=-1,
              learn_temperature=True, average_last=0.5)
    full = train(TrainConfig(out=str(tmp_path / "full"), max_steps=6, **kw))  # type: ignore[arg-type]
    assert all(np.isfinite(loss) for _, loss in full.history)
    train(TrainConfig(out=str(tmp_path / "half"), max_steps=3, **kw))  # type: ignore[arg-type]
    resumed = train(TrainConfig(out=str(tmp_path / "half"), max_steps=6, resume=True, **kw))  # type: ignore[arg-type]
    assert resumed.steps == 6
    summary = json.loads((tmp_path / "full" / "train_summary.json").read_text())
    assert summary["device"].startswith("cuda")
    a = torch.load(tmp_path / "full" / "tower.pt", weights_only=True)
    b = torch.load(tmp_path / "half" / "tower.pt", weights_only=True)
    assert all(torch.allclose(a[k], b[k], atol=1e-3) for k in a)  # GPU kernels: close, not bit-equal
    if precision == "fp16":
        ckpt = torch.load(tmp_path / "full" / "checkpoint.pt", weights_only=False)
        assert "scaler" in ckpt["precision"]
