"""What a run records as it goes: its training clock (:class:`Clock`, across resumes) and
``train_log.jsonl`` (:class:`TrainLog`)."""

from __future__ import annotations

import json
import time
from pathlib import Path

from encoders.train.loss import LossOutput
from encoders.train.state import TrainState


class Clock:
    """The run's training seconds: those of the processes before this one (a resumed run) plus this one's."""

    def __init__(self, elapsed_before: float = 0.0):
        self.t_start, self.elapsed_before = time.perf_counter(), elapsed_before

    def elapsed(self) -> float:
        return self.elapsed_before + time.perf_counter() - self.t_start


class TrainLog:
    """``train_log.jsonl``: every ``log_every`` steps (and at the last) one record with the mean loss
    and accuracy since the previous one; ``history`` keeps ``(step, loss)`` of each record. Without a
    ``path`` (data-parallel ranks other than 0) it keeps the history and writes nothing."""

    def __init__(self, path: Path | None):
        self.file = None if path is None else path.open("a")
        self.history: list[tuple[int, float]] = []
        self.loss, self.accuracy, self.n = 0.0, 0.0, 0

    def add(self, out: LossOutput) -> None:
        self.loss, self.accuracy, self.n = self.loss + float(out.loss.detach()), self.accuracy + out.accuracy, self.n + 1

    def write(self, state: TrainState, batches_per_epoch: int, elapsed_s: float) -> None:
        lrs = state.scheduler.get_last_lr()
        rec = {
            "step": state.step, "epoch": round(state.step / batches_per_epoch, 4), "loss": self.loss / self.n,
            "accuracy": self.accuracy / self.n, "lr": lrs[0], "readout_lr": lrs[2],
            "temperature": float(state.temperature().detach()), "elapsed_s": round(elapsed_s, 3),
        }
        if self.file is not None:
            self.file.write(json.dumps(rec) + "\n")
            self.file.flush()
        self.history.append((state.step, rec["loss"]))
        self.loss, self.accuracy, self.n = 0.0, 0.0, 0

    def close(self, step: int) -> None:
        """Close the file; steps since the last record still count in ``history``."""
        if self.file is not None:
            self.file.close()
        if self.n:
            self.history.append((step, self.loss / self.n))
