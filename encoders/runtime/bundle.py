"""``BundleEncoder``: encode strings with an exported tower through onnxruntime (no torch).

Usage::

    enc = BundleEncoder("bundle/", variant="fp32", threads=2, batch_size=256)   # query tower
    pins = BundleEncoder("bundle/", kind="pin")                                 # pin tower
    emb = enc.encode(["angle bracket", "LED bulb"])                             # (2, D) float32
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from encoders.normalize import normalize_query
from encoders.runtime.length_groups import plan_groups
from encoders.runtime.manifest import MANIFEST_NAME, QUERY_NORMALIZATION, BundleError, BundleManifest
from encoders.runtime.tokenize import BundleTokenizer

VARIANTS = ("fp32", "int8")
#: Cap on padded tokens (rows × longest row) per onnxruntime call. Smaller calls keep activations
#: in cache: on 2 cores, 2,048 Home Depot queries run 1.2× (fp32) to 1.4× (int8) faster in calls of ≤ 512 tokens than
#: in calls of 256 rows (bench/encoder.py). Results do not depend on it (batch-invariant graphs).
DEFAULT_MAX_TOKENS = 512


def resolve_tower_dir(path: str | Path, kind: str | None = None) -> Path:
    """A tower directory: ``path`` itself if it holds a manifest, else ``path/<kind>`` (default ``query``)."""
    p = Path(path).expanduser()
    if not p.exists():
        raise BundleError(f"bundle path {p} does not exist")
    if (p / MANIFEST_NAME).is_file():
        return p
    sub = p / (kind or "query")
    if (sub / MANIFEST_NAME).is_file():
        return sub
    raise BundleError(
        f"{p} is not a bundle: expected {p / MANIFEST_NAME} or {sub / MANIFEST_NAME} (written by `searchsage export`)"
    )


def make_session(model_path: Path, threads: int, spin: bool = False) -> ort.InferenceSession:
    """A CPU session: ``threads`` intra-op threads, sequential execution, all graph optimisations.

    ``spin=False`` stops idle worker threads from busy-waiting between calls: on shared CPUs (a
    2-core box running serving, Redis and Feast) spinning threads steal the cores others need.
    """
    so = ort.SessionOptions()
    so.intra_op_num_threads = int(threads)
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.log_severity_level = 3
    so.add_session_config_entry("session.intra_op.allow_spinning", "1" if spin else "0")
    return ort.InferenceSession(str(model_path), sess_options=so, providers=["CPUExecutionProvider"])


def check_texts(texts: Sequence[Any]) -> list[str]:
    """Return ``texts`` as a list, or raise ``TypeError`` naming the first non-string position."""
    if isinstance(texts, (str, bytes)):
        raise TypeError("encode() expects a list of strings, got a single string; wrap it in a list")
    out = list(texts)
    for i, t in enumerate(out):
        if not isinstance(t, str):
            raise TypeError(f"text at position {i} must be a str, got {type(t).__name__}: {t!r}")
    return out


def plan_calls(order: np.ndarray, lengths: Sequence[int], batch_size: int, max_tokens: int | None) -> list[np.ndarray]:
    """Split row numbers ``order`` (usually sorted by length) into onnxruntime calls of <= ``batch_size``
    rows and <= ``max_tokens`` padded tokens (rows x longest row); a longer single row gets its own call."""
    calls: list[np.ndarray] = []
    start, longest = 0, 0
    for pos, i in enumerate(order):
        n = pos - start
        longest_if = max(longest, lengths[i])
        full = n >= batch_size or (max_tokens is not None and n > 0 and (n + 1) * longest_if > max_tokens)
        if full:
            calls.append(order[start:pos])
            start, longest_if = pos, lengths[i]
        longest = longest_if
    if start < len(order):
        calls.append(order[start:])
    return calls


class BundleEncoder:
    """Load one tower of a bundle and encode lists of strings into ``(N, D)`` float32 arrays.

    ``path``: a tower directory (``bundle/query``) or a bundle root (then ``kind`` picks the tower,
    default ``"query"``). ``variant``: ``"fp32"`` (``model.onnx``) or ``"int8"`` (``model.int8.onnx``).
    ``threads``: onnxruntime intra-op threads. ``batch_size``: rows per onnxruntime call; rows are
    sorted by token length so each batch is padded only to its own longest row.
    ``expect_dim`` / ``expect_version``: fail with :class:`BundleError` when the bundle does not match
    (the version is variant-qualified, see :attr:`model_version`). ``spin``: let idle onnxruntime
    threads busy-wait (lower latency on dedicated cores, harmful on shared ones).
    """

    def __init__(
        self,
        path: str | Path,
        variant: str = "fp32",
        threads: int = 2,
        batch_size: int = 256,
        *,
        kind: str | None = None,
        expect_dim: int | None = None,
        expect_version: str | None = None,
        sort_by_length: bool = True,
        spin: bool = False,
        max_tokens: int | None = DEFAULT_MAX_TOKENS,
    ):
        if variant not in VARIANTS:
            raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}")
        if batch_size < 1 or threads < 1:
            raise ValueError(f"batch_size and threads must be >= 1, got batch_size={batch_size}, threads={threads}")
        self.directory = resolve_tower_dir(path, kind)
        self.manifest = BundleManifest.read(self.directory)
        if kind is not None and self.manifest.kind != kind:
            raise BundleError(f"{self.directory} holds a {self.manifest.kind!r} tower, expected {kind!r}")
        if expect_dim is not None and int(expect_dim) != self.manifest.dim:
            raise BundleError(
                f"{self.directory}: bundle dimension D={self.manifest.dim} does not match the expected D={expect_dim}"
            )
        if expect_version is not None and expect_version != self.manifest.version_of(variant):
            raise BundleError(
                f"{self.directory}: bundle model_version {self.manifest.version_of(variant)!r} ({variant}) does not "
                f"match the expected {expect_version!r}"
            )
        fname = self.manifest.files.get(variant)
        if fname is None or not (self.directory / fname).is_file():
            raise BundleError(f"{self.directory} has no {variant} model (manifest files: {self.manifest.files})")
        self.variant = variant
        self.threads = int(threads)
        self.batch_size = int(batch_size)
        self.max_tokens = None if max_tokens is None else max(1, int(max_tokens))
        self.sort_by_length = sort_by_length
        self.tokenizer = BundleTokenizer(self.directory / self.manifest.tokenizer, self.manifest.max_length)
        self.session = make_session(self.directory / fname, self.threads, spin)
        self._output = self.manifest.output_name
        self._inputs = {i.name for i in self.session.get_inputs()}

    # --- properties ----------------------------------------------------------------------------
    @property
    def dim(self) -> int:
        """D, the embedding width."""
        return int(self.manifest.dim)

    @property
    def model_version(self) -> str:
        """Version string of this variant: the export's content hash, ``+int8`` appended for int8."""
        return self.manifest.version_of(self.variant)

    @property
    def kind(self) -> str:
        return self.manifest.kind

    def __repr__(self) -> str:
        return f"BundleEncoder({str(self.directory)!r}, kind={self.kind!r}, variant={self.variant!r}, dim={self.dim})"

    # --- encoding ------------------------------------------------------------------------------
    def prepare(self, texts: Sequence[Any]) -> list[str]:
        """Type-check and (for query towers) normalise texts exactly as training did."""
        items = check_texts(texts)
        if self.manifest.text_normalization == QUERY_NORMALIZATION:
            return [normalize_query(t) for t in items]
        if self.manifest.text_normalization not in (None, ""):
            raise BundleError(f"unknown text_normalization {self.manifest.text_normalization!r} in {self.directory}")
        return items

    def run_ids(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        """One onnxruntime call on padded ``(n, L)`` int64 arrays → ``(n, D)`` float32."""
        feeds = {"input_ids": input_ids, "attention_mask": attention_mask}
        feeds = {k: v for k, v in feeds.items() if k in self._inputs}
        return np.asarray(self.session.run([self._output], feeds)[0], dtype=np.float32)

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Encode ``texts`` (list of N strings) → ``(N, D)`` float32, rows in input order.

        Empty strings are valid (they encode to the special tokens only); texts longer than
        ``manifest.max_length`` tokens are truncated. A non-string raises ``TypeError`` naming its position.
        """
        items = self.prepare(texts)
        out = np.zeros((len(items), self.dim), dtype=np.float32)
        if not items:
            return out
        rows = self.tokenizer.encode(items)
        order = np.argsort([len(r) for r in rows], kind="stable") if self.sort_by_length else np.arange(len(rows))
        return self._run_calls(rows, self._plan(order, rows), out)

    def encode_grouped(self, texts: Sequence[str], call_overhead_tokens: float,
                       before: Callable[[], None] | None = None) -> np.ndarray:
        """Encode a served batch ``texts`` (N strings) → ``(N, D)`` float32, rows in input order, in
        calls of similar token length (:func:`encoders.runtime.length_groups.plan_groups` with a call
        costing ``call_overhead_tokens`` tokens; each group within ``batch_size`` and ``max_tokens``).

        Tokenises once (the batcher used to count tokens and then :meth:`encode` tokenised again).
        ``before`` runs after tokenising and planning, before the first onnxruntime call (the
        service hands the previous batch's answers over there, while this thread no longer needs
        the GIL for long).
        """
        items = self.prepare(texts)
        out = np.zeros((len(items), self.dim), dtype=np.float32)
        rows = self.tokenizer.encode(items) if items else []
        lengths = [len(r) for r in rows]
        calls: list[np.ndarray] = []
        for group in plan_groups(lengths, call_overhead_tokens) if len(rows) > 1 else [list(range(len(rows)))]:
            calls += plan_calls(np.asarray(group, dtype=np.int64), lengths, self.batch_size, self.max_tokens)
        if before is not None:
            before()
        return self._run_calls(rows, calls, out)

    def _run_calls(self, rows: list[list[int]], calls: list[np.ndarray], out: np.ndarray) -> np.ndarray:
        """One onnxruntime call per entry of ``calls`` (row numbers of ``rows``), written into ``out``."""
        for idx in calls:
            if idx.size:
                batch = self.tokenizer.pad([rows[i] for i in idx])
                out[idx] = self.run_ids(batch.input_ids, batch.attention_mask)
        return out

    def _plan(self, order: np.ndarray, rows: list[list[int]]) -> list[np.ndarray]:
        """Split ``order`` into calls of <= ``batch_size`` rows and <= ``max_tokens`` padded tokens."""
        return plan_calls(order, [len(r) for r in rows], self.batch_size, self.max_tokens)
