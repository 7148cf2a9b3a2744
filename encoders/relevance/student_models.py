"""The student's model families: LightGBM (regression or lambdarank) and a small MLP served with onnxruntime.

Every family maps a feature matrix ``(N, F)`` float32 (NaN = missing) to a predicted grade on the
unit scale ``[0, 1]`` (lowest grade → 0). Regression families fit the teacher's unit grade with
squared error; ``lightgbm_rank`` fits LambdaRank on the teacher's grades binned to
:data:`RANK_LEVELS` + 1 relevance levels with exponential gains, then an isotonic map fitted on the
validation rows takes its scores back to the unit scale (:func:`rank_calibration`; order unchanged).
All stop early on the validation rows.
"""

from __future__ import annotations

import io
import json
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

FAMILIES: tuple[str, ...] = ("lightgbm", "lightgbm_rank", "mlp")
RANK_LEVELS = 10
#: Weight of the squashed raw score added to the isotonic grade: keeps LambdaRank's order exactly
#: (an isotonic map alone is flat within a step, which would tie items the ranker tells apart) while
#: moving a unit grade by at most half of it.
RANK_TIE_BREAK = 1e-3


def rank_calibration(raw: np.ndarray, unit_grades: np.ndarray) -> dict[str, Any]:
    """Isotonic map from LambdaRank scores ``raw (N,)`` (squashed by a sigmoid) to unit grades ``(N,)``.

    LambdaRank scores only order items within a query, so any global map gives coarse grades (on the
    synthetic data MAE 0.476 on a 1-3 scale, against 0.484 for the least-squares line it replaces);
    monotone, so the order is the ranker's.
    """
    from encoders.relevance.calibration import fit_isotonic

    knots = fit_isotonic(_squash(raw), unit_grades, 0.0, 1.0)
    return {"kind": "isotonic", "x": knots["x"], "y": knots["y"], "tie_break": RANK_TIE_BREAK}


def _squash(raw: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(np.asarray(raw, dtype=np.float64), -50.0, 50.0)))


def apply_rank_calibration(raw: np.ndarray, calibration: Any) -> np.ndarray:
    """Unit grades of LambdaRank scores: an isotonic ``calibration`` dict, or an ``(a, b)`` line
    (students saved before the isotonic map)."""
    raw = np.asarray(raw, dtype=np.float64)
    if isinstance(calibration, dict):
        p = _squash(raw)
        return np.interp(p, calibration["x"], calibration["y"]) + calibration["tie_break"] * (p - 0.5)
    a, b = calibration
    return a * raw + b


@dataclass
class FitData:
    """Training and validation rows: ``x_* (N, F)`` float32, ``y_* (N,)`` unit grades,
    ``g_* (N,)`` int64 query ids; ``span``: the grade span (for exponential gains)."""

    x_train: np.ndarray
    y_train: np.ndarray
    g_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    g_val: np.ndarray
    span: float = 2.0


@dataclass
class FamilyOptions:
    """``threads``: CPU threads; ``seed``; ``max_rounds``/``learning_rate``/``num_leaves``: LightGBM;
    ``hidden``/``epochs``/``batch_size``/``lr``: the MLP; ``patience``: early stopping (rounds/epochs)."""

    threads: int = 2
    seed: int = 0
    max_rounds: int = 1000
    learning_rate: float = 0.05
    num_leaves: int = 31
    hidden: tuple[int, ...] = (64, 64)
    epochs: int = 30
    batch_size: int = 1024
    lr: float = 2e-3
    patience: int = 4
    extra: dict[str, Any] = field(default_factory=dict)


def _by_group(g: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    order = np.argsort(g, kind="stable")
    _, sizes = np.unique(g[order], return_counts=True)
    return order, sizes


class LightGBMStudent:
    """LightGBM booster; ``objective`` ``regression`` (on unit grades) or ``lambdarank``."""

    def __init__(self, objective: str = "regression", booster: Any = None, calibration: Any = None,
                 threads: int = 2):
        self.objective, self.booster, self.calibration, self.threads = objective, booster, calibration, threads

    @property
    def family(self) -> str:
        return "lightgbm" if self.objective == "regression" else "lightgbm_rank"

    def fit(self, data: FitData, opts: FamilyOptions) -> LightGBMStudent:
        import lightgbm as lgb

        params: dict[str, Any] = {
            "objective": self.objective, "learning_rate": opts.learning_rate, "num_leaves": opts.num_leaves,
            "min_data_in_leaf": 40, "feature_fraction": 0.9, "bagging_fraction": 0.8, "bagging_freq": 1,
            "num_threads": opts.threads, "seed": opts.seed, "verbosity": -1, "deterministic": True,
            **opts.extra.get("lightgbm", {}),
        }
        self.threads = opts.threads
        if self.objective == "regression":
            train = lgb.Dataset(data.x_train, data.y_train, free_raw_data=False)
            valid = lgb.Dataset(data.x_val, data.y_val, reference=train)
            params["metric"] = "l2"
        else:
            params.update(metric="ndcg", eval_at=[10],
                          label_gain=[2.0 ** (i / RANK_LEVELS * data.span) - 1 for i in range(RANK_LEVELS + 1)])
            to, ts = _by_group(data.g_train)
            vo, vs = _by_group(data.g_val)
            level = lambda y: np.rint(np.clip(y, 0, 1) * RANK_LEVELS).astype(np.int64)  # noqa: E731
            train = lgb.Dataset(data.x_train[to], level(data.y_train[to]), group=ts, free_raw_data=False)
            valid = lgb.Dataset(data.x_val[vo], level(data.y_val[vo]), group=vs, reference=train)
        self.booster = lgb.train(params, train, num_boost_round=opts.max_rounds, valid_sets=[valid],
                                 callbacks=[lgb.early_stopping(max(opts.patience * 10, 20), verbose=False)])
        if self.objective != "regression":
            raw = self.booster.predict(data.x_val, num_threads=opts.threads)
            self.calibration = rank_calibration(raw, data.y_val)
        return self

    def predict_unit(self, x: np.ndarray) -> np.ndarray:
        """``(N, F)`` → ``(N,)`` float64 unit grades (not clipped)."""
        raw = np.asarray(self.booster.predict(x, num_threads=self.threads), dtype=np.float64)
        return raw if self.objective == "regression" else apply_rank_calibration(raw, self.calibration)

    @property
    def figures(self) -> dict[str, Any]:
        return {"best_iteration": int(self.booster.best_iteration or self.booster.current_iteration()),
                "calibration": self._calibration_json()}

    def _calibration_json(self) -> Any:
        if self.calibration is None or isinstance(self.calibration, dict):
            return self.calibration
        return list(self.calibration)

    def save(self, directory: Path) -> dict[str, Any]:
        self.booster.save_model(str(directory / "model.txt"), num_iteration=self.booster.best_iteration or None)
        return {"file": "model.txt", "objective": self.objective, "calibration": self._calibration_json()}

    @classmethod
    def load(cls, directory: Path, spec: dict[str, Any], threads: int = 2) -> LightGBMStudent:
        import lightgbm as lgb

        booster = lgb.Booster(model_file=str(directory / spec["file"]))
        calibration = spec.get("calibration")
        if spec["objective"] != "regression" and not isinstance(calibration, dict):
            calibration = tuple(calibration or (1.0, 0.0))  # a line: students saved before the isotonic map
        return cls(spec["objective"], booster, calibration, threads)


class MLPStudent:
    """``F → hidden → 1`` ReLU MLP with a sigmoid output; NaN → training mean and standardisation
    are inside the exported ONNX graph, so the scorer feeds raw features to onnxruntime."""

    family = "mlp"

    def __init__(self, onnx_bytes: bytes | None = None, threads: int = 2):
        self.onnx_bytes, self.threads = onnx_bytes, threads
        self._session: Any = None
        self._figures: dict[str, Any] = {}

    def fit(self, data: FitData, opts: FamilyOptions) -> MLPStudent:
        import torch
        from torch import nn

        torch.manual_seed(opts.seed)
        torch.set_num_threads(opts.threads)
        self.threads = opts.threads
        mean = np.nanmean(data.x_train, axis=0)
        mean = np.where(np.isfinite(mean), mean, 0.0)
        filled = np.where(np.isnan(data.x_train), mean, data.x_train)
        std = filled.std(axis=0)
        std = np.where(std > 1e-6, std, 1.0)
        net = _mlp_net(data.x_train.shape[1], opts.hidden, mean.astype(np.float32), std.astype(np.float32))
        optim = torch.optim.Adam(net.parameters(), lr=opts.lr)
        xt, yt = torch.from_numpy(data.x_train.astype(np.float32)), torch.from_numpy(data.y_train.astype(np.float32))
        xv = torch.from_numpy(data.x_val.astype(np.float32))
        gen = torch.Generator().manual_seed(opts.seed)
        best, best_state, stale, epoch = np.inf, None, 0, 0
        for epoch in range(1, opts.epochs + 1):  # noqa: B007
            net.train()
            for idx in torch.randperm(len(xt), generator=gen).split(opts.batch_size):
                optim.zero_grad()
                loss = nn.functional.mse_loss(net(xt[idx]), yt[idx])
                loss.backward()
                optim.step()
            net.eval()
            with torch.no_grad():
                val = float(np.mean((net(xv).numpy() - data.y_val) ** 2))
            if val < best - 1e-6:
                best, stale = val, 0
                best_state = {k: v.clone() for k, v in net.state_dict().items()}
            else:
                stale += 1
                if stale >= opts.patience:
                    break
        if best_state is not None:
            net.load_state_dict(best_state)
        net.eval()
        buf = io.BytesIO()
        with warnings.catch_warnings():  # the TorchScript exporter's deprecation notice
            warnings.simplefilter("ignore", DeprecationWarning)
            torch.onnx.export(net, (xt[:2],), buf, input_names=["features"], output_names=["unit"],
                              dynamic_axes={"features": {0: "n"}, "unit": {0: "n"}}, opset_version=17, dynamo=False)
        self.onnx_bytes = buf.getvalue()
        self._figures = {"epochs": epoch, "val_mse": best, "hidden": list(opts.hidden)}
        return self

    @property
    def session(self) -> Any:
        if self._session is None:
            if not self.onnx_bytes:
                raise RuntimeError("the MLP student is not fitted or loaded")
            self._session = _bytes_session(self.onnx_bytes, self.threads)
        return self._session

    def predict_unit(self, x: np.ndarray) -> np.ndarray:
        out = self.session.run(["unit"], {"features": np.ascontiguousarray(x, dtype=np.float32)})[0]
        return np.asarray(out, dtype=np.float64).reshape(-1)

    @property
    def figures(self) -> dict[str, Any]:
        return self._figures

    def save(self, directory: Path) -> dict[str, Any]:
        (directory / "model.onnx").write_bytes(self.onnx_bytes or b"")
        return {"file": "model.onnx", **self._figures}

    @classmethod
    def load(cls, directory: Path, spec: dict[str, Any], threads: int = 2) -> MLPStudent:
        return cls((directory / spec["file"]).read_bytes(), threads)


def _bytes_session(model: bytes, threads: int) -> Any:
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = int(threads)
    so.inter_op_num_threads = 1
    so.log_severity_level = 3
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(model, sess_options=so, providers=["CPUExecutionProvider"])


def _mlp_net(n_in: int, hidden: tuple[int, ...], mean: np.ndarray, std: np.ndarray) -> Any:
    import torch
    from torch import nn

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.register_buffer("mean", torch.from_numpy(mean))
            self.register_buffer("std", torch.from_numpy(std))
            layers: list[nn.Module] = []
            width = n_in
            for h in hidden:
                layers += [nn.Linear(width, h), nn.ReLU()]
                width = h
            layers.append(nn.Linear(width, 1))
            self.body = nn.Sequential(*layers)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            x = torch.where(torch.isnan(x), self.mean, x)
            return torch.sigmoid(self.body((x - self.mean) / self.std)).squeeze(-1)

    return Net()


def new_family(name: str) -> LightGBMStudent | MLPStudent:
    """An unfitted model of family ``name`` (one of :data:`FAMILIES`)."""
    if name == "lightgbm":
        return LightGBMStudent("regression")
    if name == "lightgbm_rank":
        return LightGBMStudent("lambdarank")
    if name == "mlp":
        return MLPStudent()
    raise ValueError(f"unknown student family {name!r}; expected one of {FAMILIES}")


def load_family(directory: Path, spec: dict[str, Any], threads: int = 2) -> LightGBMStudent | MLPStudent:
    """The fitted model described by a manifest's ``model`` entry (``family`` + files)."""
    family = spec.get("family")
    if family in ("lightgbm", "lightgbm_rank"):
        return LightGBMStudent.load(directory, spec, threads)
    if family == "mlp":
        return MLPStudent.load(directory, spec, threads)
    raise ValueError(f"{directory}: unknown student family {family!r} in {json.dumps(spec)[:200]}")
