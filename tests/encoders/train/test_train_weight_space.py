"""Weight-space operations: WiSE-FT interpolation and tail averaging against hand-computed values."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from encoders.train.weight_space import TailAverage, interpolate_weights


def _model() -> nn.Module:
    m = nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 1))
    m[0].weight.requires_grad_(False)  # a frozen parameter is never averaged
    return m


def _set(m: nn.Module, value: float) -> None:
    with torch.no_grad():
        for p in m.parameters():
            p.fill_(value)


def test_tail_average_is_the_mean_of_the_steps_in_the_tail_only() -> None:
    m = _model()
    avg = TailAverage(m, fraction=0.5)
    for progress, value in [(0.1, 100.0), (0.4, 100.0), (0.5, 1.0), (0.75, 2.0), (1.0, 6.0)]:
        _set(m, value)
        avg.update(progress)
    assert avg.steps == 3
    state = avg.averaged_state()
    assert torch.allclose(state["1.weight"], torch.full((1, 2), 3.0))  # (1 + 2 + 6) / 3
    assert torch.allclose(state["0.bias"], torch.full((2,), 3.0))
    assert torch.equal(state["0.weight"], torch.full((2, 2), 6.0))  # frozen: the model's own value
    assert torch.equal(m[1].weight, torch.full((1, 2), 6.0))  # the model itself is untouched


def test_tail_average_off_and_resume_round_trip() -> None:
    m = _model()
    off = TailAverage(m, fraction=0.0)
    off.update(1.0)
    assert off.steps == 0 and off.mean == {}
    first = TailAverage(m, fraction=1 - 1e-9)
    _set(m, 2.0)
    first.update(0.5)
    resumed = TailAverage(m, fraction=1 - 1e-9)
    resumed.load_state_dict(first.state_dict())
    _set(m, 4.0)
    resumed.update(0.9)
    assert resumed.steps == 2 and torch.allclose(resumed.averaged_state()["1.bias"], torch.tensor([3.0]))
    with pytest.raises(ValueError, match=r"in \[0, 1\)"):
        TailAverage(m, fraction=1.0)


def test_interpolate_weights_moves_floating_weights_towards_the_start() -> None:
    m = _model()
    _set(m, 1.0)
    start = {k: torch.full_like(v, 3.0) for k, v in m.state_dict().items()}
    interpolate_weights(m, start, 0.25)
    assert all(torch.allclose(v, torch.full_like(v, 2.5)) for v in m.state_dict().values())  # 0.25·1 + 0.75·3
