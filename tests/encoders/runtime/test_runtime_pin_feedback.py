from __future__ import annotations

import numpy as np
import pytest

from encoders.runtime.pin_feedback import PinFeedback, PinFeedbackIndex

PINS = np.array([[1.0, 0.0], [0.0, 1.0], [0.6, 0.8]], dtype=np.float32)


def test_golden_value_worked_by_hand():
    # q̂ = (1, 0.1)/|.| = (0.99504, 0.09950); scores p0 0.99504, p1 0.09950, p2 0.67663 → top-2 = p0, p2
    # c = mean(p0, p2) = (0.8, 0.4) → (0.894427, 0.447214); q̂ + 0.5 c = (1.442254, 0.323111) → / 1.478005
    out = PinFeedback(k=2, weight=0.5).apply(np.array([[1.0, 0.1]], dtype=np.float32), PINS)
    np.testing.assert_allclose(out, [[0.975811, 0.218613]], atol=1e-5)
    assert out.dtype == np.float32


def test_pins_are_normalised_before_averaging():
    scaled = PINS * np.array([[10.0], [1.0], [1.0]], dtype=np.float32)  # same directions, p0 ten times longer
    q = np.array([[1.0, 0.1]], dtype=np.float32)
    np.testing.assert_allclose(PinFeedback(k=2, weight=0.5).apply(q, scaled),
                               PinFeedback(k=2, weight=0.5).apply(q, PINS), atol=1e-6)


def test_weight_zero_is_plain_normalisation():
    q = np.array([[3.0, 4.0], [0.0, 2.0]], dtype=np.float32)
    np.testing.assert_allclose(PinFeedback(weight=0.0).apply(q, PINS), [[0.6, 0.8], [0.0, 1.0]], atol=1e-6)


def test_refined_query_moves_towards_its_top_pins_and_stays_unit_length():
    rng = np.random.default_rng(0)
    pins = rng.normal(size=(500, 16)).astype(np.float32)
    q = rng.normal(size=(40, 16)).astype(np.float32)
    fb = PinFeedback(k=5, weight=0.3)
    out = fb.apply(q, pins)
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-5)
    qn = q / np.linalg.norm(q, axis=1, keepdims=True)
    pn = pins / np.linalg.norm(pins, axis=1, keepdims=True)
    top = np.argsort(-(qn @ pins.T), axis=1)[:, :5]
    before = np.einsum("nd,nkd->nk", qn, pn[top]).mean(1)
    after = np.einsum("nd,nkd->nk", out, pn[top]).mean(1)
    assert (after > before).all()


def test_k_larger_than_the_index_and_zero_rows():
    q = np.array([[0.0, 0.0], [1.0, 0.0]], dtype=np.float32)
    out = PinFeedback(k=50, weight=1.0).apply(q, PINS)  # every pin averaged
    c = (PINS.mean(0) / np.linalg.norm(PINS.mean(0)))
    expect = (np.array([1.0, 0.0]) + c) / np.linalg.norm(np.array([1.0, 0.0]) + c)
    np.testing.assert_allclose(out, [[0.0, 0.0], expect], atol=1e-6)


@pytest.mark.parametrize("kwargs, match", [({"k": 0}, "positive integer"), ({"k": 2.5}, "positive integer"),
                                           ({"weight": -0.1}, ">= 0"), ({"weight": float("nan")}, ">= 0")])
def test_bad_settings_are_clear_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        PinFeedback(**kwargs)


def test_dimension_mismatch_names_the_shapes():
    with pytest.raises(ValueError, match=r"pin index is \(M, 2\) but the queries are shaped \(1, 3\)"):
        PinFeedback().apply(np.ones((1, 3), dtype=np.float32), PINS)
    with pytest.raises(ValueError, match="non-empty"):
        PinFeedback().apply(np.ones((1, 2), dtype=np.float32), np.zeros((0, 2), dtype=np.float32))


def test_bound_index_matches_apply_and_tags_the_settings_and_pins():
    rng = np.random.default_rng(1)
    pins = rng.normal(size=(300, 8)).astype(np.float32)
    q = rng.normal(size=(25, 8)).astype(np.float32)
    fb = PinFeedback(k=7, weight=0.25)
    index = PinFeedbackIndex(fb, pins)
    np.testing.assert_array_equal(index.apply(q), fb.apply(q, pins))
    assert index.dim == 8
    tag = index.version_tag
    assert tag.startswith("pinfb-k7-w0.25-") and len(tag.rsplit("-", 1)[1]) == 12
    assert PinFeedbackIndex(fb, pins.copy()).version_tag == tag  # content, not identity
    assert PinFeedbackIndex(PinFeedback(k=7, weight=0.3), pins).version_tag != tag
    other = pins.copy()
    other[0, 0] += 1.0
    assert PinFeedbackIndex(fb, other).version_tag != tag
