"""The batcher's grouping logic, with a recording encoder double (the real runtime is in the app and
robustness tests): idle runs at once, busy accumulates, token budget, bounded queue, failure isolation."""

from __future__ import annotations

import asyncio
import time

import numpy as np
import pytest
from serving_helpers import DIM, RecordingEncoder, vec

from encoders.serving.batcher import DynamicBatcher, EncoderFailure, Overloaded, UnbatchedRunner
from encoders.serving.metrics import ServiceMetrics


def run(coro):
    return asyncio.run(coro)


def test_concurrent_requests_share_batches_and_get_their_own_rows() -> None:
    enc = RecordingEncoder(delay_s=0.02)

    async def main() -> list[np.ndarray]:
        b = DynamicBatcher(enc, max_batch=256, max_wait_ms=5)
        try:
            return await asyncio.gather(*(b.encode([f"q{i}"]) for i in range(60)))
        finally:
            await b.aclose()

    outs = run(main())
    assert len(enc.calls) < 10, f"60 concurrent requests used {len(enc.calls)} encoder calls"
    assert max(len(c) for c in enc.calls) >= 20
    for i, out in enumerate(outs):
        assert out.shape == (1, DIM)
        np.testing.assert_array_equal(out[0], vec(f"q{i}"))
    assert all(name.startswith("searchsage-encode") for name in enc.threads)


def test_max_batch_is_respected_and_large_requests_are_split() -> None:
    enc = RecordingEncoder(delay_s=0.005)
    metrics = ServiceMetrics()

    async def main() -> tuple[list[np.ndarray], np.ndarray]:
        b = DynamicBatcher(enc, max_batch=16, max_wait_ms=5, metrics=metrics)
        try:
            small = asyncio.gather(*(b.encode([f"s{i}", f"t{i}"]) for i in range(40)))
            big = b.encode([f"b{i}" for i in range(50)])
            return await small, await big
        finally:
            await b.aclose()

    small, big = run(main())
    assert max(len(c) for c in enc.calls) <= 16
    assert big.shape == (50, DIM)
    np.testing.assert_array_equal(big, np.stack([vec(f"b{i}") for i in range(50)]))
    np.testing.assert_array_equal(small[7], np.stack([vec("s7"), vec("t7")]))
    assert metrics.batches == len(enc.calls) and metrics.batch_max <= 16
    assert sum(metrics.batch_hist.values()) == metrics.batches


def test_a_lone_request_never_waits_the_batch_window() -> None:
    """Even with a long max_wait, a lone request on an idle worker runs at once: measured with a slow
    encoder, its latency is the encoder's time, far below the window."""
    enc = RecordingEncoder(delay_s=0.05)

    async def main() -> list[float]:
        b = DynamicBatcher(enc, max_batch=256, max_wait_ms=2000)
        await b.start()
        try:
            await b.encode(["warm"])
            took = []
            for i in range(5):
                t0 = time.perf_counter()
                await b.encode([f"alone {i}"])
                took.append(time.perf_counter() - t0)
            return took
        finally:
            await b.aclose()

    took = run(main())
    assert max(took) < 0.5, f"lone requests took {[round(t * 1000) for t in took]} ms with a 2,000 ms window"
    assert [len(c) for c in enc.calls] == [1] * 6


def test_max_wait_lets_a_forming_batch_fill_when_others_already_wait() -> None:
    """Two requests queue behind a busy worker; with max_wait the batch waits (from its oldest request)
    for a third that comes ~100 ms after the worker got free; without max_wait they run at once."""

    async def main(max_wait_ms: float) -> list[int]:
        enc = RecordingEncoder(delay_s=0.2)
        b = DynamicBatcher(enc, max_batch=64, max_wait_ms=max_wait_ms)
        await b.start()
        try:
            first = asyncio.ensure_future(b.encode(["first"]))
            while not enc.started:  # the worker took "first"
                await asyncio.sleep(0.001)
            pair = [asyncio.ensure_future(b.encode([f"pair {i}"])) for i in range(2)]
            await asyncio.sleep(0.29)  # the worker got free at ~0.2 s with the pair waiting
            await asyncio.gather(first, *pair, b.encode(["third"]))
        finally:
            await b.aclose()
        return [len(c) for c in enc.calls]

    assert run(main(600.0)) == [1, 3]
    assert run(main(0.0)) == [1, 2, 1]


def test_full_batch_flushes_without_waiting_for_max_wait() -> None:
    enc = RecordingEncoder()

    async def main() -> float:
        b = DynamicBatcher(enc, max_batch=8, max_wait_ms=2000)
        try:
            t0 = time.perf_counter()
            await asyncio.gather(*(b.encode([f"q{i}"]) for i in range(8)))
            return time.perf_counter() - t0
        finally:
            await b.aclose()

    assert run(main()) < 1.0
    assert [len(c) for c in enc.calls] == [8]


def test_identical_queries_in_one_batch_are_encoded_once() -> None:
    enc = RecordingEncoder(delay_s=0.01)

    async def main() -> list[np.ndarray]:
        b = DynamicBatcher(enc, max_batch=64, max_wait_ms=20)
        try:
            return await asyncio.gather(*(b.encode(["same", f"x{i % 3}"]) for i in range(12)))
        finally:
            await b.aclose()

    outs = run(main())
    assert sum(len(c) for c in enc.calls) <= 2 * 4  # "same" and x0..x2, at most once per batch
    for i, out in enumerate(outs):
        np.testing.assert_array_equal(out, np.stack([vec("same"), vec(f"x{i % 3}")]))


def test_encoder_failure_fails_its_batch_only_and_the_batcher_keeps_running() -> None:
    enc = RecordingEncoder(delay_s=0.005)
    metrics = ServiceMetrics()

    async def main() -> np.ndarray:
        b = DynamicBatcher(enc, max_batch=32, max_wait_ms=2, metrics=metrics)
        try:
            enc.fail_next = RuntimeError("onnxruntime exploded")
            with pytest.raises(EncoderFailure, match="onnxruntime exploded"):
                await b.encode(["boom"])
            enc.bad_shape_next = True
            with pytest.raises(EncoderFailure, match="shape"):
                await b.encode(["bad shape"])
            return await b.encode(["fine"])
        finally:
            await b.aclose()

    out = run(main())
    np.testing.assert_array_equal(out[0], vec("fine"))
    assert metrics.encoder_errors == 2


def test_unbatched_runner_is_one_call_per_request() -> None:
    enc = RecordingEncoder(delay_s=0.002)

    async def main() -> list[np.ndarray]:
        r = UnbatchedRunner(enc)
        try:
            return await asyncio.gather(*(r.encode([f"q{i}"]) for i in range(10)))
        finally:
            await r.aclose()

    outs = run(main())
    assert [len(c) for c in enc.calls] == [1] * 10
    np.testing.assert_array_equal(outs[3][0], vec("q3"))


def test_an_idle_encoder_runs_a_lone_request_at_once() -> None:
    """Default max_wait is 0: sequential requests do not wait for companions (they waited 5 ms before)."""
    metrics = ServiceMetrics()

    async def main() -> None:
        b = DynamicBatcher(RecordingEncoder(), metrics=metrics)
        try:
            for i in range(30):
                await b.encode([f"alone {i}"])
        finally:
            await b.aclose()

    run(main())
    waits = metrics.queue_wait.summary()
    assert waits["count"] == 30
    assert waits["p50_ms"] < 2.0, f"a lone request waited {waits['p50_ms']} ms with an idle encoder"


def test_a_busy_encoder_lets_requests_accumulate_into_one_batch() -> None:
    enc = RecordingEncoder(delay_s=0.1)

    async def main() -> None:
        b = DynamicBatcher(enc, max_batch=64)
        try:
            first = asyncio.ensure_future(b.encode(["first"]))
            await asyncio.sleep(0.03)  # the encoder is busy with "first"
            assert b.queued == 1
            await asyncio.gather(first, *(b.encode([f"later {i}"]) for i in range(10)))
        finally:
            await b.aclose()

    run(main())
    assert [len(c) for c in enc.calls] == [1, 10]


def test_the_token_budget_bounds_batches_of_long_queries() -> None:
    enc = RecordingEncoder(delay_s=0.02)

    def tokens(text: str) -> int:
        return len(text.split())

    async def main() -> list[np.ndarray]:
        b = DynamicBatcher(enc, max_batch=256, max_batch_tokens=20, token_count=tokens)
        try:
            long = [" ".join(["w"] * 8) + f" {i}" for i in range(12)]  # 9 tokens each
            short = [f"s{i}" for i in range(20)]  # 1 token each
            return await asyncio.gather(*(b.encode([q]) for q in [*long, *short]), b.encode(long[:3]))
        finally:
            await b.aclose()

    outs = run(main())
    assert all(sum(tokens(t) for t in c) <= 20 or len(c) == 1 for c in enc.calls), enc.calls
    assert max(len(c) for c in enc.calls) >= 10, "short queries should still share batches"
    np.testing.assert_array_equal(outs[-1], np.stack([vec(" ".join(["w"] * 8) + f" {i}") for i in range(3)]))


def test_a_full_queue_rejects_at_once_and_counts_it() -> None:
    enc = RecordingEncoder(delay_s=0.15)
    metrics = ServiceMetrics()

    async def main() -> tuple[list[object], np.ndarray]:
        b = DynamicBatcher(enc, max_batch=4, max_queue=6, metrics=metrics)
        try:
            t0 = time.perf_counter()
            results = await asyncio.gather(*(b.encode([f"a{i}", f"b{i}"]) for i in range(8)), return_exceptions=True)
            rejected_fast = all(isinstance(r, Overloaded) for r in results[3:])
            assert rejected_fast and time.perf_counter() - t0 < 2.0
            return results, await b.encode(["after"])
        finally:
            await b.aclose()

    results, after = run(main())
    ok = [r for r in results if isinstance(r, np.ndarray)]
    over = [r for r in results if isinstance(r, Overloaded)]
    assert len(ok) == 3 and len(over) == 5, results  # 3 requests x 2 queries fill the queue of 6
    assert all(r.retry_after_s >= 1 and "limit 6" in str(r) for r in over)
    assert metrics.rejected == 5
    np.testing.assert_array_equal(after[0], vec("after"))


def test_a_poison_request_fails_alone_and_its_batch_mates_are_answered() -> None:
    enc = RecordingEncoder(delay_s=0.01)
    enc.poison = "\ud800"
    metrics = ServiceMetrics()

    async def main() -> list[object]:
        b = DynamicBatcher(enc, max_batch=64, max_wait_ms=20, metrics=metrics)
        try:
            busy = asyncio.ensure_future(b.encode(["keeps the worker busy"]))  # the rest queue behind it
            await asyncio.sleep(0.002)
            good = [b.encode([f"good {i}", "shared"]) for i in range(20)]
            results = await asyncio.gather(*good[:7], b.encode(["\ud800 bad", "shared"]), *good[7:],
                                           return_exceptions=True)
            await busy
            return results
        finally:
            await b.aclose()

    results = run(main())
    bad = results.pop(7)
    assert isinstance(bad, EncoderFailure) and "TextEncodeInput" in str(bad)
    for i, out in enumerate(results):
        assert isinstance(out, np.ndarray), (i, out)
        np.testing.assert_array_equal(out, np.stack([vec(f"good {i}"), vec("shared")]))
    assert metrics.encoder_errors == 1 and metrics.batch_splits >= 1
    assert len(enc.calls[1]) > 2, "the poison request shared a batch (the case being tested)"
