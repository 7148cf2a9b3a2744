"""Where the time of a served load level goes: encoder busy time, CPU of the server and of the client.

A closed loop of C one-query clients can hand the encoder at most C queries at a time, and the
benchmark's client shares the cores with the server. So the service's throughput against the
runtime's offline ceiling (``BundleEncoder`` at batch 256, length-sorted) splits into three factors
measured in the same run::

    served / offline = (offline in calls of the served batch size / offline)     # batch-size penalty
                     x (encoder speed inside the service / offline at that size)  # cores shared with HTTP
                     x (encoder busy time / wall time)                            # encoder waiting for requests

The first factor is what any server would pay for those batches with no HTTP at all; the second is
the encoder slowed by the event loop and the client competing for the same two cores; the third is
the time the encoder sits idle while responses are written and requests parsed.
"""

from __future__ import annotations

import os
import resource
from dataclasses import asdict, dataclass
from pathlib import Path


def process_cpu_seconds(pid: int) -> float | None:
    """CPU seconds (user + system, all threads) of process ``pid`` from /proc; None off Linux."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_busy_seconds() -> float | None:
    """CPU seconds the whole machine spent busy (not idle/iowait) since boot; None off Linux."""
    try:
        ticks = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except (OSError, ValueError):
        return None
    return (sum(ticks) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")


def own_cpu_seconds() -> float:
    """CPU seconds of this process (the benchmark's client), all threads."""
    use = resource.getrusage(resource.RUSAGE_SELF)
    return use.ru_utime + use.ru_stime


def cpu_seconds_of(pids: list[int]) -> float | None:
    """CPU seconds of this process and ``pids`` together; None when one cannot be read."""
    parts = [process_cpu_seconds(p) for p in pids]
    if any(x is None for x in parts):
        return None
    return own_cpu_seconds() + sum(x for x in parts if x is not None)


@dataclass
class Profile:
    """One load level of one mode, with the offline figures it is compared with.

    ``encode_s``: the service's own ``encode_seconds`` histogram sum over the run (tokenise + onnxruntime
    per batch, summed over workers). ``offline_at_batch_qps``: ``BundleEncoder`` in arrival-order chunks of
    ``round(mean_batch)`` queries, each cut into calls of similar length as the batcher cuts a batch, no HTTP.
    """

    mode: str
    concurrency: int
    queries: int
    wall_s: float
    mean_batch: float
    encode_s: float
    server_cpu_s: float | None
    client_cpu_s: float
    offline_qps: float
    offline_at_batch_qps: float

    @property
    def served_qps(self) -> float:
        return self.queries / self.wall_s if self.wall_s > 0 else 0.0

    def factors(self) -> dict[str, float]:
        """The three factors whose product is ``served / offline`` (see the module docstring)."""
        encoder_qps = self.queries / self.encode_s if self.encode_s > 0 else 0.0
        return {
            "batch_size_penalty": self.offline_at_batch_qps / self.offline_qps,
            "encoder_in_service_vs_offline_at_batch": encoder_qps / self.offline_at_batch_qps,
            "encoder_busy_fraction": self.encode_s / self.wall_s if self.wall_s > 0 else 0.0,
            "served_over_offline": self.served_qps / self.offline_qps,
        }

    def per_thousand_ms(self) -> dict[str, float]:
        """Milliseconds per 1,000 queries: offline, offline at the served batch size, encoder in the service, wall."""
        return {
            "offline_batch_256": 1e6 / self.offline_qps,
            "offline_at_served_batch": 1e6 / self.offline_at_batch_qps,
            "encoder_in_service": 1e6 * self.encode_s / max(self.queries, 1),
            "service_wall": 1e6 / self.served_qps if self.served_qps > 0 else float("inf"),
        }

    def to_dict(self) -> dict[str, object]:
        out: dict[str, object] = asdict(self)
        out["served_qps"] = round(self.served_qps, 1)
        out["factors"] = {k: round(v, 3) for k, v in self.factors().items()}
        out["per_thousand_ms"] = {k: round(v, 1) for k, v in self.per_thousand_ms().items()}
        out["server_cores"] = None if self.server_cpu_s is None else round(self.server_cpu_s / self.wall_s, 2)
        out["client_cores"] = round(self.client_cpu_s / self.wall_s, 2)
        return out


def profile_markdown(p: dict[str, object]) -> list[str]:
    """Markdown lines for one :meth:`Profile.to_dict`."""
    f, ms = p["factors"], p["per_thousand_ms"]
    assert isinstance(f, dict) and isinstance(ms, dict)
    batch = round(float(p["mean_batch"]))  # type: ignore[arg-type]
    return [
        f"Where the time goes, mode {p['mode']} at concurrency {p['concurrency']} ({p['served_qps']} q/s, mean batch "
        f"{p['mean_batch']}; server {p['server_cores']} cores, benchmark client {p['client_cores']} cores of "
        f"{os.cpu_count()}):", "",
        "| per 1,000 queries | ms |", "|---|---:|",
        f"| offline, `BundleEncoder` at batch 256 (length-sorted) | {ms['offline_batch_256']} |",
        f"| offline, arrival-order batches of {batch} queries (the served batch size), grouped by length as the "
        f"batcher does, no HTTP | "
        f"{ms['offline_at_served_batch']} |",
        f"| encoder calls inside the service (tokenise + onnxruntime, `encode_seconds` sum) | {ms['encoder_in_service']} |",
        f"| service wall time | {ms['service_wall']} |", "",
        f"served / offline = {f['served_over_offline']} = batch-size penalty {f['batch_size_penalty']} "
        f"x encoder speed in the service vs offline at that size {f['encoder_in_service_vs_offline_at_batch']} "
        f"x encoder busy fraction {f['encoder_busy_fraction']}.",
    ]
