"""logQ correction of the sampled softmax: hand-computed logits, counts, the sketch, the gradient."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from encoders.train.config import TrainConfig
from encoders.train.item_frequency import CountMinSketch, ExactCounts, LogQ, count_stream
from encoders.train.loss import in_batch_softmax_loss
from encoders.train.step import ExtraNegatives, step_log_q

NEG_INF = float("-inf")


def _ce(row: list[float], label: int) -> float:
    finite = [x for x in row if x != NEG_INF]
    return -(row[label] - math.log(sum(math.exp(x) for x in finite)))


def test_three_by_three_logits_are_corrected_off_the_diagonal_only() -> None:
    q = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    p = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.5, 0.5]])
    # raw logits q @ p.T = [[1, 0, .5], [0, 1, .5], [1, 1, 1]]
    log_q = torch.tensor([math.log(2.0), math.log(0.5), math.log(4.0)])
    out = in_batch_softmax_loss(q, p, 1.0, torch.tensor([10, 11, 12]), column_log_q=log_q)
    l2, lh, l4 = math.log(2.0), math.log(0.5), math.log(4.0)
    expected = [
        [1.0, 0.0 - lh, 0.5 - l4],
        [0.0 - l2, 1.0, 0.5 - l4],
        [1.0 - l2, 1.0 - lh, 1.0],
    ]
    assert torch.allclose(out.logits, torch.tensor(expected), atol=1e-6)
    want = sum(_ce(r, j) for j, r in enumerate(expected)) / 3
    assert out.loss.item() == pytest.approx(want, rel=1e-6)
    plain = in_batch_softmax_loss(q, p, 1.0, torch.tensor([10, 11, 12]))
    assert plain.loss.item() != pytest.approx(want)


def test_masked_cells_stay_masked_under_the_correction() -> None:
    q = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    p = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.5, 0.5]])  # rows 0 and 1 share pin 7
    out = in_batch_softmax_loss(q, p, 1.0, torch.tensor([7, 7, 3]), column_log_q=torch.tensor([1.0, 1.0, -1.0]))
    assert out.logits[0, 1].item() == NEG_INF and out.logits[1, 0].item() == NEG_INF
    assert out.logits[1, 1].item() == pytest.approx(0.0)  # label: uncorrected
    assert out.logits[1, 2].item() == pytest.approx(0.5 + 1.0)
    with pytest.raises(ValueError, match="column_log_q"):
        in_batch_softmax_loss(q, p, 1.0, torch.tensor([7, 7, 3]), column_log_q=torch.zeros(4))


def test_expected_counts_by_hand() -> None:
    counts = count_stream(ExactCounts(10), [np.array([0, 0, 0]), np.array([1])])  # q(0)=3/4, q(1)=1/4
    lq = LogQ(counts, n_items=10)
    # 2 real rows (pins 0, 1) + 1 pseudo row (pin 5, uniform); extra: random pin 1, hard pin 9
    cols = lq.columns(torch.tensor([0, 1, 5]), 2, extra_ids=torch.tensor([1, 9]),
                      corrected_extra=torch.tensor([True, False]), n_random=1)
    n_uniform = 1 + 1  # the pseudo row and the random negative
    want = [2 * 3 / 4 + n_uniform / 10, 2 * 1 / 4 + n_uniform / 10, 0 + n_uniform / 10, 2 * 1 / 4 + n_uniform / 10]
    assert cols[:4].tolist() == pytest.approx([math.log(w) for w in want], rel=1e-6)
    assert cols[4].item() == 0.0  # hard negative: not from a known proposal


def test_gathered_columns_take_a_mask_of_the_real_rows() -> None:
    lq = LogQ(count_stream(ExactCounts(10), [np.array([0, 0, 0, 1])]), n_items=10)
    prefix = lq.columns(torch.tensor([0, 1, 5]), 2)
    # two processes' columns concatenated: [real 0, pseudo 5] + [real 1]
    gathered = lq.columns(torch.tensor([0, 5, 1]), torch.tensor([True, False, True]))
    assert gathered.tolist() == pytest.approx(prefix[[0, 2, 1]].tolist())


def test_uniform_negatives_shift_by_log_k_over_p_and_the_whole_catalogue_is_moot() -> None:
    counts = count_stream(ExactCounts(1000), [np.arange(100)])  # 100 pins once each, q = 1/100
    lq = LogQ(counts, n_items=1000)
    ids = torch.tensor([500, 600, 700, 800])  # never positives: only the uniform source holds them
    only_random = lq.columns(torch.tensor([0, 1]), 2, ids, torch.ones(4, dtype=torch.bool), n_random=4)
    assert only_random[2:].tolist() == pytest.approx([math.log(4 / 1000)] * 4, rel=1e-6)
    full = lq.columns(torch.tensor([0, 1]), 2, torch.arange(1000), torch.ones(1000, dtype=torch.bool), full=True)
    assert full.abs().max().item() <= math.log(1 + 2 / 100) + 1e-6  # n(j) = 1 + B q(j): at most log 1.02


def test_step_corrects_random_and_catalogue_columns_but_not_hard_or_queue() -> None:
    cfg = TrainConfig(data="d", out="o", random_negatives=3, queue_size=2)
    negs = ExtraNegatives(cfg, n_pins=20, hard=None, seed=0)
    negs.draw(["a", "b"], np.array([4, 5]))  # fills the queue
    ids = negs.draw(["a", "b"], np.array([6, 7]))
    assert negs.last_sizes == {"random": 3, "queue": 2}
    lq = LogQ(count_stream(ExactCounts(20), [np.array([4, 5, 6, 7])]), n_items=20)
    cols = step_log_q(lq, torch.tensor([6, 7]), 2, ids, negs)
    assert cols.shape == (2 + 5,)
    assert (cols[2:5] != 0).all() and cols[5:].tolist() == [0.0, 0.0]


def test_count_min_sketch_never_undercounts_and_its_overcount_is_bounded_on_a_skewed_stream() -> None:
    rng = np.random.default_rng(0)
    stream = rng.zipf(1.3, 50_000) % 20_000  # heavy head, long tail
    exact = count_stream(ExactCounts(20_000), [stream[:25_000], stream[25_000:]])
    width, depth = 500, 4
    sketch = count_stream(CountMinSketch(width, depth, seed=1), [stream[:25_000], stream[25_000:]])
    ids = np.unique(stream)
    est, true = sketch.count(ids), exact.count(ids)
    assert sketch.total == exact.total == 50_000
    assert (est >= true).all()
    bound = CountMinSketch.error_bound(width, sketch.total)  # e/w × N ≈ 272
    over = (est - true) > bound
    assert over.mean() <= math.exp(-depth) + 0.01, over.mean()  # P(err > bound) <= e^-d per item
    head = ids[np.argsort(-true)[:10]]  # the popular pins are nearly exact
    assert np.all(sketch.count(head) - exact.count(head) <= bound)
    assert np.all(sketch.count(head) <= 1.05 * exact.count(head) + 1)
    with pytest.raises(ValueError, match="ids"):
        sketch.update(np.array([-1]))


def test_sketch_and_exact_logq_agree_on_a_wide_sketch() -> None:
    stream = np.repeat(np.arange(50), np.arange(1, 51))
    exact = LogQ(count_stream(ExactCounts(50), [stream]), 50)
    sketch = LogQ(count_stream(CountMinSketch(1 << 16, 4), [stream]), 50)
    pos = torch.arange(8)
    assert torch.allclose(exact.columns(pos, 8), sketch.columns(pos, 8))


def test_logq_gradient_matches_the_full_softmax_gradient_on_average() -> None:
    """Negatives drawn from a skewed q: the corrected sampled-softmax gradient averages to the full
    softmax gradient; the uncorrected one does not (it over-pushes the popular pins)."""
    g = torch.Generator().manual_seed(0)
    n, d, k = 40, 6, 400
    pins = torch.nn.functional.normalize(torch.randn(n, d, generator=g), dim=1)
    x0 = torch.randn(1, d, generator=g)
    popularity = 1.0 / torch.arange(1, n + 1, dtype=torch.float64) ** 1.2
    qprob = popularity / popularity.sum()
    label = 7
    x = x0.clone().requires_grad_(True)
    full = torch.nn.functional.cross_entropy((x @ pins.T) / 0.5, torch.tensor([label]))
    (g_full,) = torch.autograd.grad(full, x)
    rng = np.random.default_rng(0)
    sums = {True: torch.zeros_like(x0), False: torch.zeros_like(x0)}
    draws = 300
    for _ in range(draws):
        ids = torch.from_numpy(rng.choice(n, size=k, p=qprob.numpy()))
        log_q = torch.cat([torch.zeros(1), torch.log(k * qprob[ids]).float()])
        for corrected in (True, False):
            x = x0.clone().requires_grad_(True)
            out = in_batch_softmax_loss(x, pins[[label]], 0.5, torch.tensor([label]), extra=pins[ids], extra_ids=ids,
                                        column_log_q=log_q if corrected else None)
            (grad,) = torch.autograd.grad(out.loss, x)
            sums[corrected] += grad
    err_corrected = (sums[True] / draws - g_full).norm() / g_full.norm()
    err_plain = (sums[False] / draws - g_full).norm() / g_full.norm()
    assert err_corrected < 0.05, err_corrected
    assert err_plain > 4 * err_corrected, (err_plain, err_corrected)
