"""How the batcher hands work to its encoder threads: straight from worker to worker (no event-loop
round trip between batches), several batches in flight, calls cut by token length, clients that go
away, shutdown. The grouping logic itself: :mod:`encoders.runtime.length_groups`."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from serving_helpers import DIM, RecordingEncoder, vec

from encoders.serving.batcher import DynamicBatcher, Overloaded, tokenizer_lengths


async def until_started(enc: RecordingEncoder, calls: int = 1, timeout_s: float = 5.0) -> None:
    """Wait until the encoder has started ``calls`` calls (a worker took the work), not a fixed time."""
    deadline = time.perf_counter() + timeout_s
    while len(enc.started) < calls:
        assert time.perf_counter() < deadline, "the worker never took the work"
        await asyncio.sleep(0.001)


class WordTokenizer:
    """A stand-in for ``BundleTokenizer``: one token per word plus [CLS]/[SEP]."""

    def encode(self, texts: list[str]) -> list[list[int]]:
        return [[0] * (len(t.split()) + 2) for t in texts]


class TokenizedEncoder(RecordingEncoder):
    """A recording encoder that exposes a tokenizer, as ``BundleEncoder`` does."""

    tokenizer = WordTokenizer()


def test_a_batch_of_mixed_lengths_is_encoded_in_calls_of_similar_length() -> None:
    enc = TokenizedEncoder(delay_s=0.05)
    short = [f"s{i}" for i in range(12)]
    long = [" ".join(["w"] * 30) + f" {i}" for i in range(2)]

    async def main() -> list[np.ndarray]:
        b = DynamicBatcher(enc, max_batch=64)
        try:
            busy = asyncio.ensure_future(b.encode(["busy"]))  # the rest queue into one batch behind it
            await until_started(enc)
            outs = await asyncio.gather(*(b.encode([q]) for q in [*short, *long]))
            await busy
            return outs
        finally:
            await b.aclose()

    outs = run(main())
    assert sorted(len(c) for c in enc.calls[1:]) == [2, 12], enc.calls
    assert {frozenset(c) for c in enc.calls[1:]} == {frozenset(short), frozenset(long)}
    for q, out in zip([*short, *long], outs, strict=True):
        np.testing.assert_array_equal(out[0], vec(q))


def test_without_a_tokenizer_or_with_grouping_off_a_batch_is_one_call() -> None:
    assert tokenizer_lengths(RecordingEncoder()) is None
    assert tokenizer_lengths(TokenizedEncoder()) is not None

    class Wrapper:  # like PinFeedbackEncoder: the tokenizer is on ``inner``
        inner = TokenizedEncoder()

    assert tokenizer_lengths(Wrapper()) is not None
    for enc, overhead in ((RecordingEncoder(delay_s=0.05), 16.0), (TokenizedEncoder(delay_s=0.05), 0.0)):

        async def main(enc: RecordingEncoder = enc, overhead: float = overhead) -> None:
            b = DynamicBatcher(enc, max_batch=64, call_overhead_tokens=overhead)
            try:
                busy = asyncio.ensure_future(b.encode(["busy"]))
                await until_started(enc)
                await asyncio.gather(*(b.encode([q]) for q in ["a", "b", " ".join(["w"] * 40)]))
                await busy
            finally:
                await b.aclose()

        run(main())
        assert [len(c) for c in enc.calls] == [1, 3]


def test_the_next_batch_starts_without_waiting_for_the_event_loop() -> None:
    """A worker that finishes a batch takes the next one itself: even while the event loop is blocked
    the encoder keeps working (the loop only answers)."""
    enc = RecordingEncoder(delay_s=0.05)

    async def main() -> None:
        b = DynamicBatcher(enc)
        await b.start()
        try:
            first = asyncio.ensure_future(b.encode(["first"]))
            await until_started(enc)
            second = asyncio.ensure_future(b.encode(["second"]))
            await asyncio.sleep(0)  # queued behind "first"
            time.sleep(0.3)  # the loop is blocked long after "first" is done
            await asyncio.gather(first, second)
        finally:
            await b.aclose()

    run(main())
    assert [c for c in enc.calls] == [["first"], ["second"]]
    assert enc.started[1] - enc.started[0] < 0.2, "the second batch waited for the blocked event loop"


def test_workers_keep_several_batches_in_flight() -> None:
    enc = RecordingEncoder(delay_s=0.3)

    async def main() -> float:
        b = DynamicBatcher(enc, workers=2, max_batch=1)
        await b.start()
        try:
            t0 = time.perf_counter()
            await asyncio.gather(b.encode(["a"]), b.encode(["b"]))
            return time.perf_counter() - t0
        finally:
            await b.aclose()

    took = run(main())
    assert len(enc.calls) == 2 and len(enc.threads) == 2
    assert abs(enc.started[1] - enc.started[0]) < 0.15 and took < 0.55, (enc.started, took)


def test_a_client_that_goes_away_is_not_encoded_and_frees_its_place() -> None:
    enc = RecordingEncoder(delay_s=0.1)

    async def main() -> int:
        b = DynamicBatcher(enc)
        try:
            first = asyncio.ensure_future(b.encode(["first"]))
            await until_started(enc)
            gone = asyncio.ensure_future(b.encode(["gone a", "gone b"]))
            await asyncio.sleep(0.01)
            assert b.queued == 3
            gone.cancel()
            await asyncio.sleep(0)
            assert b.queued == 1
            await first
            await b.encode(["after"])
            return b.queued
        finally:
            await b.aclose()

    assert run(main()) == 0
    assert enc.calls == [["first"], ["after"]]


def test_shutdown_answers_the_batch_in_flight_fails_the_queue_and_stops_the_threads() -> None:
    enc = RecordingEncoder(delay_s=0.2)

    async def main() -> list[object]:
        b = DynamicBatcher(enc, workers=1)
        await b.start()
        first = asyncio.ensure_future(b.encode(["in flight"]))
        await until_started(enc)
        queued = asyncio.ensure_future(b.encode(["queued"]))
        await asyncio.sleep(0)
        await b.aclose()
        with pytest.raises(Overloaded, match="shutting down"):
            await b.encode(["late"])
        return list(await asyncio.gather(first, queued, return_exceptions=True))

    first, queued = run(main())
    assert isinstance(first, np.ndarray) and first.shape == (1, DIM)
    assert isinstance(queued, Overloaded)
    assert enc.calls == [["in flight"]]
    assert not [t for t in threading.enumerate() if t.name.startswith("searchsage-encode")]


def test_a_bug_in_the_worker_fails_the_batch_not_the_service() -> None:
    enc = RecordingEncoder()

    async def main() -> np.ndarray:
        b = DynamicBatcher(enc, token_lengths=lambda texts: 1 / 0)  # type: ignore[arg-type,return-value]
        try:
            with pytest.raises(Exception, match="division by zero"):
                await b.encode(["x", "y"])
            b.token_lengths = None
            return await b.encode(["fine"])
        finally:
            await b.aclose()

    np.testing.assert_array_equal(run(main())[0], vec("fine"))


def run(coro):  # type: ignore[no-untyped-def]
    return asyncio.run(coro)


#: Ten short queries and two long ones: a batch worth cutting into calls by length.
MIXED_QUERIES = [f"q{i}" for i in range(10)] + ["long query with many words in it to pad a batch " + str(i) for i in range(2)]


def queue_behind_a_busy_worker(enc: object, queries: list[str], started: Callable[[], bool]) -> list[np.ndarray]:
    """One request occupies the worker (until ``started()``), then ``queries`` arrive as one-query
    requests and queue into one batch behind it -> their answers, in order."""

    async def main() -> list[np.ndarray]:
        b = DynamicBatcher(enc, max_batch=64, call_overhead_tokens=4)  # type: ignore[arg-type]
        try:
            busy = asyncio.ensure_future(b.encode(["busy"]))
            while not started():
                await asyncio.sleep(0.001)
            outs = await asyncio.gather(*(b.encode([q]) for q in queries))
            await busy
            return outs
        finally:
            await b.aclose()

    return run(main())


def test_with_the_real_bundle_grouped_calls_give_the_vectors_of_one_call(tiny_onnx_bundle: Path) -> None:
    """BundleEncoder exposes its tokenizer: a mixed batch is cut into calls by real token length, and
    every row is the vector the runtime gives for that query (grouping changes the calls, not the rows)."""
    from encoders.runtime import BundleEncoder

    inner = BundleEncoder(tiny_onnx_bundle, threads=1)
    lengths = tokenizer_lengths(inner)
    assert lengths is not None and lengths(["drill", "cordless drill with two batteries"])[0] < 5

    class Counting:  # the service's encoder shape, calls recorded; the tokenizer is found on ``inner``
        def __init__(self) -> None:
            self.inner, self.dim, self.model_version, self.calls = inner, inner.dim, inner.model_version, []

        def encode(self, texts: list[str]) -> np.ndarray:
            self.calls.append(list(texts))
            time.sleep(0.02)
            return self.inner.encode(texts)

    enc = Counting()
    queries = MIXED_QUERIES
    outs = queue_behind_a_busy_worker(enc, queries, started=lambda: bool(enc.calls))
    assert len(enc.calls) >= 3 and sorted(map(len, enc.calls[1:]))[-1] < len(queries), enc.calls
    expected = inner.encode(queries)
    np.testing.assert_allclose(np.vstack(outs), expected, rtol=0, atol=1e-5)


def test_a_bundle_encoder_batch_is_tokenised_once(tiny_onnx_bundle: Path) -> None:
    """With a ``BundleEncoder`` the batcher hands the whole batch to ``encode_grouped``: one
    tokenisation per batch (it used to count tokens, then ``encode`` tokenised each call again)."""
    from encoders.runtime import BundleEncoder

    enc = BundleEncoder(tiny_onnx_bundle, threads=1)
    tokenised: list[int] = []
    tokenize, run_ids = enc.tokenizer.encode, enc.run_ids

    def counting(items: list[str]) -> list[list[int]]:
        tokenised.append(len(items))
        return tokenize(items)

    def slow_run(ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        time.sleep(0.02)  # holds the worker so the rest queue into one batch
        return run_ids(ids, mask)

    enc.tokenizer.encode = counting  # type: ignore[method-assign]
    enc.run_ids = slow_run  # type: ignore[method-assign]
    queries = MIXED_QUERIES
    outs = queue_behind_a_busy_worker(enc, queries, started=lambda: bool(tokenised))
    assert tokenised == [1, 12], tokenised  # the lone first request, then the queued batch, once each
    expected = BundleEncoder(tiny_onnx_bundle, threads=1).encode(queries)
    np.testing.assert_allclose(np.vstack(outs), expected, rtol=0, atol=1e-5)


def test_the_next_batch_is_measured_before_the_previous_one_is_answered() -> None:
    """Token lengths of a queued batch are counted before the previous batch's answers go to the
    loop (the tokenizer lets go of the GIL; once the loop is busy answering, getting it back can
    take a switch interval)."""
    events: list[str] = []

    class Tok(WordTokenizer):
        def encode(self, texts: list[str]) -> list[list[int]]:
            events.append(f"lengths {len(texts)}")
            return super().encode(texts)

    class Enc(RecordingEncoder):
        tokenizer = Tok()

    class Recording(DynamicBatcher):
        def _hand_off(self, batch, *answers):  # type: ignore[no-untyped-def]
            events.append(f"answer {[p.texts[0] for p in batch]}")
            super()._hand_off(batch, *answers)

    enc = Enc(delay_s=0.05)

    async def main() -> None:
        b = Recording(enc)
        try:
            first = asyncio.ensure_future(b.encode(["first"]))
            await until_started(enc)
            await asyncio.gather(first, b.encode(["a"]), b.encode(["b c d"]))
        finally:
            await b.aclose()

    run(main())
    assert events == ["lengths 2", "answer ['first']", "answer ['a', 'b c d']"], events


def test_the_service_passes_the_call_overhead_to_its_batcher() -> None:
    from encoders.serving.service import EmbeddingService

    service = EmbeddingService(TokenizedEncoder(), call_overhead_tokens=0.0)
    assert isinstance(service.runner, DynamicBatcher) and service.runner.call_overhead_tokens == 0.0
    assert service.runner.token_lengths is not None  # the tokenizer was found; grouping is just off
