"""The user tower's contract: unit vectors in the pin space, padding ignored, conditions and ablations matter."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from encoders.homefeed.features import INPUT_NAMES
from encoders.homefeed.id_table import IdTable
from encoders.homefeed.masknet import PlainMLP, SerialMaskNet
from encoders.homefeed.onnx_export import example_inputs
from encoders.homefeed.tower import UserTower, UserTowerConfig, age_bucket

DIM, HIST = 12, 6


def _tower(**changes: object) -> UserTower:
    torch.manual_seed(0)
    cfg = UserTowerConfig(pin_dim=DIM, user_rows=20, interest_rows=7, history=HIST, hidden=16, id_dim=8, heads=2,
                          **changes)  # type: ignore[arg-type]
    tower = UserTower(cfg)
    with torch.no_grad():  # a trained-looking readout (it starts at zero)
        tower.readout.weight.normal_(0, 0.3)
    return tower.eval()


def _inputs(seed: int = 0) -> dict[str, torch.Tensor]:
    return {k: torch.from_numpy(v) for k, v in example_inputs(DIM, HIST, 20, 7, batch=6, seed=seed).items()}


def test_output_is_unit_norm_in_the_pin_space() -> None:
    z = _tower()(**_inputs())
    assert z.shape == (6, DIM)
    assert torch.allclose(z.norm(dim=1), torch.ones(6), atol=1e-5)


def test_padding_slots_do_not_change_the_output() -> None:
    tower, x = _tower(), _inputs()
    y = {k: v.clone() for k, v in x.items()}
    pad = y["hist_mask"] == 0
    assert pad.any()
    y["hist_vectors"][pad] = 5.0
    y["hist_age"][pad] = 99.0
    y["hist_action"][pad] = 2
    assert torch.allclose(tower(**x), tower(**y), atol=1e-6)


def test_untrained_readout_is_the_attention_pooled_mean() -> None:
    torch.manual_seed(0)
    tower = UserTower(UserTowerConfig(pin_dim=DIM, user_rows=20, interest_rows=7, history=HIST, hidden=16,
                                      id_dim=8, heads=1)).eval()
    with torch.no_grad():
        tower.queries.zero_()  # uniform attention (and no condition: a condition shifts the queries)
    x = {**_inputs(), "condition_row": torch.zeros(6, dtype=torch.int64)}
    mask = x["hist_mask"]
    mean = (x["hist_vectors"] * mask[..., None]).sum(1) / mask.sum(1, keepdim=True)
    assert torch.allclose(tower(**x), torch.nn.functional.normalize(mean, dim=-1), atol=1e-5)


def test_condition_user_and_ablations() -> None:
    x = _inputs()
    full = _tower()
    other = {**x, "condition_row": torch.full_like(x["condition_row"], 3)}
    assert not torch.allclose(full(**x), full(**other))
    other_user = {**x, "user_row": (x["user_row"] + 1) % 20}
    assert not torch.allclose(full(**x), full(**other_user))
    no_id = _tower(id_embeddings=False)
    assert no_id.users is None
    assert torch.allclose(no_id(**x), no_id(**other_user))  # the user ID is not an input any more
    assert isinstance(_tower(feature_crossing=False).cross, PlainMLP)
    assert isinstance(full.cross, SerialMaskNet)


def test_id_table_sparse_gradients_zero_row_and_export_path() -> None:
    table = IdTable(10, 4)
    ids = torch.tensor([[1, 3, 0], [2, 0, 0]])
    w = torch.tensor([[0.5, 0.5, 0.0], [1.0, 0.0, 0.0]])
    out = table(ids, w)
    expected = torch.stack([0.5 * table.bag.weight[1] + 0.5 * table.bag.weight[3], table.bag.weight[2]])
    assert torch.allclose(out, expected)
    assert torch.all(table(torch.tensor([0])) == 0)
    out.sum().backward()
    assert table.bag.weight.grad.is_sparse
    assert set(table.bag.weight.grad.coalesce().indices()[0].tolist()) <= {1, 2, 3}


def test_age_buckets_are_monotone_and_bounded() -> None:
    ages = torch.tensor([0.0, 0.01, 0.5, 1.0, 7.0, 30.0, 365.0, 1e5])
    b = age_bucket(ages)
    assert torch.all(b[1:] >= b[:-1]) and b.min() == 0 and b.max() <= 13


@pytest.mark.parametrize("name", INPUT_NAMES)
def test_every_input_is_used_by_the_full_tower(name: str) -> None:
    tower, x = _tower(), _inputs(1)
    y = {k: v.clone() for k, v in x.items()}
    if name == "hist_mask":
        y[name] = torch.ones_like(y[name])
    elif y[name].dtype == torch.int64:
        y[name] = (y[name] + 1) % (3 if name == "hist_action" else 7)
    else:
        y[name] = y[name] * 3.0 + 0.5
    assert not np.allclose(tower(**x).detach().numpy(), tower(**y).detach().numpy())
