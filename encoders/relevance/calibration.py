"""Calibration of a relevance model's output to the grade scale, and how well it is calibrated.

The teacher outputs ``p = sigmoid(logit)``; :func:`fit_isotonic` fits a monotone map ``p → grade``
on validation pairs (pool-adjacent-violators, weighted), stored as knots that the torch-free runtime
applies with ``np.interp`` (:func:`encoders.runtime.cross_encoder.calibrate`). Monotone, so the
ranking of a query's items is unchanged (up to ties inside a flat step).
:func:`calibration_report` gives the figures a model card shows: MAE, RMSE, expected calibration
error over equal-count bins, and the reliability table (mean predicted vs mean human grade per bin).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def pava(y: np.ndarray, w: np.ndarray | None = None) -> np.ndarray:
    """Non-decreasing least-squares fit to ``y (N,)`` in the given order (weights ``w (N,)``) → ``(N,)``."""
    y = np.asarray(y, dtype=np.float64)
    w = np.ones_like(y) if w is None else np.asarray(w, dtype=np.float64)
    means: list[float] = []
    weights: list[float] = []
    counts: list[int] = []
    for yi, wi in zip(y, w, strict=True):
        means.append(float(yi))
        weights.append(float(wi))
        counts.append(1)
        while len(means) > 1 and means[-2] > means[-1]:
            m2, w2, c2 = means.pop(), weights.pop(), counts.pop()
            m1, w1, c1 = means.pop(), weights.pop(), counts.pop()
            means.append((m1 * w1 + m2 * w2) / (w1 + w2))
            weights.append(w1 + w2)
            counts.append(c1 + c2)
    return np.repeat(np.asarray(means), counts)


def fit_isotonic(p: np.ndarray, grades: np.ndarray, lowest: float, highest: float) -> dict[str, list[float]]:
    """Knots ``{"x": [...], "y": [...]}`` of the isotonic regression of ``grades (N,)`` on ``p (N,)``.

    One knot per constant block (at the block's mean ``p``), plus end knots at ``p = 0`` and ``1``
    that extend the first/last block; ``y`` clipped to ``[lowest, highest]``.
    """
    p = np.asarray(p, dtype=np.float64)
    order = np.argsort(p, kind="stable")
    ps, fitted = p[order], pava(np.asarray(grades, dtype=np.float64)[order])
    xs: list[float] = []
    ys: list[float] = []
    start = 0
    for i in range(1, ps.size + 1):
        if i == ps.size or fitted[i] != fitted[start]:
            xs.append(float(ps[start:i].mean()))
            ys.append(float(np.clip(fitted[start], lowest, highest)))
            start = i
    xs = [0.0, *xs, 1.0] if xs else [0.0, 1.0]
    ys = [ys[0], *ys, ys[-1]] if ys else [lowest, highest]
    # keep x strictly increasing for np.interp (blocks at equal mean p merge)
    kx, ky = [xs[0]], [ys[0]]
    for x, yv in zip(xs[1:], ys[1:], strict=True):
        if x > kx[-1]:
            kx.append(x)
            ky.append(yv)
        else:
            ky[-1] = max(ky[-1], yv)
    return {"x": kx, "y": ky}


@dataclass(frozen=True)
class CalibrationReport:
    """How predicted grades compare with human grades on held-out pairs.

    ``bins``: rows ``{"predicted", "human", "count"}`` (equal-count bins by predicted grade);
    ``ece``: count-weighted mean of ``|predicted − human|`` over the bins, in grade units.
    """

    n: int
    mae: float
    rmse: float
    ece: float
    bins: list[dict[str, float]]

    def to_dict(self) -> dict[str, object]:
        return {"n": self.n, "mae": self.mae, "rmse": self.rmse, "ece": self.ece, "bins": self.bins}


def calibration_report(predicted: np.ndarray, human: np.ndarray, n_bins: int = 10) -> CalibrationReport:
    """:class:`CalibrationReport` of predicted grades ``(N,)`` against human grades ``(N,)``."""
    pr = np.asarray(predicted, dtype=np.float64)
    hu = np.asarray(human, dtype=np.float64)
    if pr.shape != hu.shape or pr.size == 0:
        raise ValueError(f"need equal, non-empty arrays, got {pr.shape} and {hu.shape}")
    order = np.argsort(pr, kind="stable")
    bins = []
    ece = 0.0
    for chunk in np.array_split(order, min(n_bins, pr.size)):
        mp, mh = float(pr[chunk].mean()), float(hu[chunk].mean())
        bins.append({"predicted": mp, "human": mh, "count": int(chunk.size)})
        ece += chunk.size * abs(mp - mh)
    err = pr - hu
    return CalibrationReport(int(pr.size), float(np.abs(err).mean()), float(np.sqrt((err**2).mean())),
                             ece / pr.size, bins)
