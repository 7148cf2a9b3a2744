"""Golden-value tests of the in-batch softmax loss, its masking and the temperature."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from encoders.train.loss import Temperature, build_mask, in_batch_softmax_loss, near_duplicate_mask


def _ce(row: list[float], label: int) -> float:
    finite = [x for x in row if x != float("-inf")]
    return -(row[label] - math.log(sum(math.exp(x) for x in finite)))


def test_two_by_two_matches_hand_computation() -> None:
    q = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    p = torch.tensor([[0.6, 0.8], [1.0, 0.0]])
    out = in_batch_softmax_loss(q, p, 0.5, torch.tensor([0, 1]))
    # logits = q @ p.T / 0.5 = [[1.2, 2.0], [1.6, 0.0]]
    expected = (_ce([1.2, 2.0], 0) + _ce([1.6, 0.0], 1)) / 2
    assert out.loss.item() == pytest.approx(expected, rel=1e-6)
    assert torch.allclose(out.logits, torch.tensor([[1.2, 2.0], [1.6, 0.0]]))
    assert out.accuracy == 0.0  # both rows prefer the wrong column


def test_duplicate_pins_in_batch_are_masked() -> None:
    q = torch.tensor([[1.0, 0.0], [0.8, 0.6], [0.0, 1.0]])
    p = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])  # rows 0 and 1 share pin 7
    out = in_batch_softmax_loss(q, p, 1.0, torch.tensor([7, 7, 3]))
    assert out.logits[0, 1].item() == float("-inf") and out.logits[1, 0].item() == float("-inf")
    assert out.logits[0, 0].item() == pytest.approx(1.0) and out.logits[1, 1].item() == pytest.approx(0.8)
    expected = (_ce([1.0, float("-inf"), 0.0], 0) + _ce([float("-inf"), 0.8, 0.6], 1) + _ce([0.0, 0.0, 1.0], 2)) / 3
    assert out.loss.item() == pytest.approx(expected, rel=1e-6)
    unmasked = in_batch_softmax_loss(q, p, 1.0, torch.tensor([7, 8, 3]))
    assert unmasked.loss.item() > out.loss.item()


def test_extra_negatives_mask_the_positive_and_known_positives() -> None:
    q = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    p = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    extra = torch.tensor([[1.0, 0.0], [0.6, 0.8], [0.0, -1.0]])
    extra_ids = torch.tensor([0, 5, 9])  # column 2 is pin 0 = row 0's positive
    out = in_batch_softmax_loss(
        q, p, 1.0, torch.tensor([0, 1]), extra=extra, extra_ids=extra_ids, known_positives=[set(), {5}]
    )
    assert out.logits.shape == (2, 5)
    assert out.logits[0, 2].item() == float("-inf")  # extra copy of row 0's positive
    assert out.logits[1, 3].item() == float("-inf")  # pin 5 is a known positive of query 1
    assert out.logits[0, 3].item() == pytest.approx(0.6)  # but a plain negative for query 0
    expected = (_ce([1.0, 0.0, float("-inf"), 0.6, 0.0], 0) + _ce([0.0, 1.0, 0.0, float("-inf"), -1.0], 1)) / 2
    assert out.loss.item() == pytest.approx(expected, rel=1e-6)


def test_build_mask_keeps_the_diagonal() -> None:
    m = build_mask(torch.tensor([4, 4, 4]), known_positives=[{4}, {4}, {4}])
    assert m.diagonal().tolist() == [False, False, False]
    assert m.sum().item() == 6


def test_weights_give_a_weighted_mean() -> None:
    q = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    p = torch.tensor([[0.6, 0.8], [1.0, 0.0]])
    w = torch.tensor([1.0, 3.0])
    out = in_batch_softmax_loss(q, p, 0.5, torch.tensor([0, 1]), weights=w)
    expected = (1 * _ce([1.2, 2.0], 0) + 3 * _ce([1.6, 0.0], 1)) / 4
    assert out.loss.item() == pytest.approx(expected, rel=1e-6)


def test_learned_temperature_gets_gradient_and_is_clamped() -> None:
    t = Temperature(0.05, learn=True)
    assert t().item() == pytest.approx(0.05)
    q = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    p = torch.tensor([[0.6, 0.8], [0.8, 0.6]])
    out = in_batch_softmax_loss(q, p, t(), torch.tensor([0, 1]))
    out.loss.backward()
    assert t.log_tau.grad is not None and t.log_tau.grad.item() != 0.0
    with torch.no_grad():
        t.log_tau.fill_(math.log(1e-5))
    assert t().item() == pytest.approx(0.01)
    fixed = Temperature(0.07)
    assert not fixed.log_tau.requires_grad
    with pytest.raises(ValueError, match="outside"):
        Temperature(5.0)


def test_extra_blocks_equal_one_concatenated_block() -> None:
    g = torch.Generator().manual_seed(0)
    q, p = torch.randn(4, 3, generator=g), torch.randn(4, 3, generator=g)
    a, b = torch.randn(2, 3, generator=g), torch.randn(5, 3, generator=g)
    ids = torch.arange(10, 17)
    pos = torch.tensor([0, 1, 2, 12])  # row 3's positive is also extra column 2 (id 12) → masked
    one = in_batch_softmax_loss(q, p, 0.1, pos, extra=torch.cat([a, b]), extra_ids=ids)
    two = in_batch_softmax_loss(q, p, 0.1, pos, extra=[a, b], extra_ids=ids)
    assert torch.equal(one.logits, two.logits) and one.loss.item() == pytest.approx(two.loss.item())
    assert two.logits[3, 4 + 2].item() == float("-inf")


def test_near_duplicate_pins_are_masked_but_never_the_label() -> None:
    s = math.sqrt(0.5)
    p = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    extra = torch.tensor([[0.995, 0.0998749], [s, s]])  # cos 0.995 with pin 0; cos 0.707 with both
    mask = near_duplicate_mask(p, [extra], threshold=0.9)
    assert mask.tolist() == [[False, False, True, False], [False, False, False, False]]
    q = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    out = in_batch_softmax_loss(q, p, 1.0, torch.tensor([0, 1]), extra=extra, extra_ids=torch.tensor([2, 3]),
                                also_mask=mask | torch.eye(2, 4, dtype=torch.bool))  # the diagonal stays
    # row 0 keeps columns 0, 1, 3: logits 1, 0, s
    assert out.loss.item() == pytest.approx((_ce([1.0, 0.0, s], 0) + _ce([0.0, 1.0, 0.0998749, s], 1)) / 2, rel=1e-5)
    with pytest.raises(ValueError, match="also_mask"):
        in_batch_softmax_loss(q, p, 1.0, torch.tensor([0, 1]), also_mask=mask)


def test_build_mask_known_positives_match_a_brute_force_reference() -> None:
    rng = np.random.default_rng(0)
    pos = torch.from_numpy(rng.integers(0, 30, 12))
    extra = torch.from_numpy(rng.integers(0, 30, 40))  # repeats: one pin in several columns
    known = [set(rng.integers(0, 30, int(rng.integers(0, 8))).tolist()) for _ in range(12)]
    cols = torch.cat([pos, extra]).tolist()
    expected = torch.zeros(12, len(cols), dtype=torch.bool)
    for j in range(12):
        for c, pid in enumerate(cols):
            expected[j, c] = c != j and (pid == int(pos[j]) or pid in known[j])
    assert torch.equal(build_mask(pos, extra, known), expected)


def test_bfloat16_scores_give_the_float32_loss_and_gradient_to_within_one_percent() -> None:
    g = torch.Generator().manual_seed(0)
    q = nn.functional.normalize(torch.randn(8, 32, generator=g), dim=1).requires_grad_(True)
    p = nn.functional.normalize(torch.randn(8, 32, generator=g), dim=1)
    extra = nn.functional.normalize(torch.randn(50, 32, generator=g), dim=1)
    pos, ids = torch.arange(8), torch.arange(100, 150)
    full = in_batch_softmax_loss(q, p, 0.05, pos, extra=extra, extra_ids=ids, known_positives=[{100}] * 8)
    (grad_full,) = torch.autograd.grad(full.loss, q)
    half = in_batch_softmax_loss(q, p, 0.05, pos, extra=extra.bfloat16(), extra_ids=ids,
                                 known_positives=[{100}] * 8, score_dtype=torch.bfloat16)
    (grad_half,) = torch.autograd.grad(half.loss, q)
    assert half.logits.dtype == torch.float32 and torch.isneginf(half.logits[:, 8]).all()  # pin 100 masked
    assert abs(half.loss.item() - full.loss.item()) < 5e-3 * full.loss.item()
    assert grad_half.dtype == torch.float32
    assert float((grad_half - grad_full).norm() / grad_full.norm()) < 1e-2  # bf16 keeps ~3 significant digits
    assert not torch.allclose(half.logits, full.logits, atol=0)  # the bfloat16 path was really taken
