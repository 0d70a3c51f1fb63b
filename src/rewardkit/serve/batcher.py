"""Dynamic batching: concurrent requests' items share one model call.

One worker thread owns the model: it counts tokens, checks the per-item limit and scores, so the
model (and its tokenizer, which is not safe to use from several threads at once) only ever runs on
that thread. Callers `await Batcher.score(...)` from the event loop.

The worker takes queued items, oldest first, until the batch holds `max_batch_items` items or
`max_batch_tokens` tokens, or `max_wait_ms` has passed since the first of them arrived; then it
runs the model once and hands each caller exactly its own results, in order. A request may be
split across batches; its future resolves when all its items are scored.
"""

from __future__ import annotations

import asyncio
import collections
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from rewardkit.errors import RewardkitError
from rewardkit.scorers.base import Score, split_groups

# groups: `scorers.base.Group`, one list of Scores each; tokens: token id rows (the model's `score_tokens`)
Kind = Literal["conversations", "texts", "groups", "tokens"]
CHARS_PER_TOKEN = 4  # estimate for models without a token counter; used for the batch budget only


class LimitExceeded(RewardkitError):
    """Input over a configured server limit; `limit` names the setting (HTTP 413)."""

    def __init__(self, message: str, *, limit: str):
        super().__init__(message)
        self.limit = limit


@dataclass(eq=False)
class _Job:
    """One caller's items, scored by the worker and returned through `future`."""

    kind: Kind
    payloads: list[Any]
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future
    submitted: float = field(default_factory=time.monotonic)
    results: list[Score | None] = field(default_factory=list)
    remaining: int = 0
    finished: bool = False  # set on the worker thread, or by the caller when it gives up waiting


@dataclass(eq=False)
class _Item:
    job: _Job
    index: int
    cost: int


_STOP = object()


class Batcher:
    """Scores items from many concurrent callers with one model call per batch.

    Args:
        model: a reward model with `score_detailed` (and `score_texts` for "texts" jobs);
            `count_tokens` and `max_length` are used when present.
        max_batch_tokens: token budget of one model call (an item over it runs alone).
        max_batch_items: most items in one model call.
        max_wait_ms: how long the first queued item may wait for company.
        max_tokens_per_item: larger items are refused with `LimitExceeded` (None: no limit).
        enabled: False scores each caller's items alone, in one call, without waiting.
        on_batch: called with (items, tokens) after each successful model call.

    Example:
        >>> class M:
        ...     def score_detailed(self, convs):
        ...         return [Score(float(len(c))) for c in convs]
        >>> async def main():
        ...     b = Batcher(M())
        ...     try:
        ...         return await b.score("conversations", [[{"role": "user", "content": "hi"}]])
        ...     finally:
        ...         b.close()
        >>> asyncio.run(main())[0].score
        1.0
    """

    def __init__(
        self,
        model: Any,
        *,
        max_batch_tokens: int = 16384,
        max_batch_items: int = 64,
        max_wait_ms: float = 5.0,
        max_tokens_per_item: int | None = None,
        enabled: bool = True,
        on_batch: Callable[[int, int], None] | None = None,
    ):
        if max_batch_tokens < 1 or max_batch_items < 1 or max_wait_ms < 0:
            raise ValueError(
                "Batcher: max_batch_tokens and max_batch_items must be >= 1 and max_wait_ms >= 0, got "
                f"{max_batch_tokens}, {max_batch_items}, {max_wait_ms}"
            )
        self.model = model
        self.max_batch_tokens, self.max_batch_items = max_batch_tokens, max_batch_items
        self.max_wait = max_wait_ms / 1000
        self.max_tokens_per_item = max_tokens_per_item
        self.enabled = enabled
        self.on_batch = on_batch
        self._jobs: queue.Queue = queue.Queue()
        self._ready: collections.deque[_Item] = collections.deque()  # counted, not yet batched
        self._waiting = 0
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._stopping = False

    # ---- caller side (event loop) -------------------------------------------------------------

    async def score(self, kind: Kind, payloads: Sequence[Any]) -> list[Score]:
        """Scores `payloads` (conversations, or formatted texts) and returns one Score each, in order."""
        if not payloads:
            return []
        loop = asyncio.get_running_loop()
        job = _Job(kind, list(payloads), loop, loop.create_future())
        job.results, job.remaining = [None] * len(job.payloads), len(job.payloads)
        self._start()
        with self._lock:
            self._waiting += len(job.payloads)
        self._jobs.put(job)
        try:
            return await job.future
        except asyncio.CancelledError:
            job.finished = True  # the worker drops its remaining items
            raise

    def queue_depth(self) -> int:
        """Items waiting for the model (queued or counted, not yet in a running batch)."""
        return self._waiting

    def close(self, timeout: float = 5.0) -> None:
        """Stops the worker after its current batch; callers still queued get an error."""
        if self._thread is None:
            return
        self._jobs.put(_STOP)
        self._thread.join(timeout)
        self._thread = None

    def _start(self) -> None:
        # Started on first use so an app works with or without its lifespan having run.
        if self._thread is None:
            with self._lock:
                if self._thread is None:
                    self._stopping = False
                    self._thread = threading.Thread(target=self._work, name="rewardkit-batcher", daemon=True)
                    self._thread.start()

    # ---- worker side (one thread) ---------------------------------------------------------------

    def _work(self) -> None:
        while not self._stopping:
            batch = self._collect()
            try:
                if batch:
                    self._run(batch)
            except Exception as err:  # a bug here must not kill the only worker and hang every caller
                for job in dict.fromkeys(it.job for it in batch):
                    self._fail(job, err)
        self._drain()

    def _collect(self) -> list[_Item]:
        """The next batch: items in arrival order, within the budget, taken until the deadline."""
        first = self._pop(None)
        if first is None:
            return []
        batch, tokens = [first], first.cost
        deadline = first.job.submitted + self.max_wait
        while len(batch) < self.max_batch_items or not self.enabled:
            if not self.enabled:  # a job's items are all in _ready once its first one is popped
                nxt = self._ready.popleft() if self._ready and self._ready[0].job is first.job else None
            else:
                nxt = self._pop(max(0.0, deadline - time.monotonic()))
            if nxt is None:
                break
            if self.enabled and (nxt.job.kind != first.job.kind or tokens + nxt.cost > self.max_batch_tokens):
                self._ready.appendleft(nxt)  # first in line for the next batch
                break
            batch.append(nxt)
            tokens += nxt.cost
        with self._lock:
            self._waiting -= len(batch)
        return batch

    def _pop(self, timeout: float | None) -> _Item | None:
        """The oldest live item; waits up to `timeout` seconds (None: until one comes or stop)."""
        while True:
            while self._ready:
                item = self._ready.popleft()
                if not item.job.finished:
                    return item
                with self._lock:
                    self._waiting -= 1
            if self._stopping:
                return None
            try:
                job = self._jobs.get(block=timeout is None or timeout > 0, timeout=timeout)
            except queue.Empty:
                return None
            if job is _STOP:
                self._stopping = True
                return None
            self._admit(job)

    def _admit(self, job: _Job) -> None:
        """Counts a job's tokens, refuses it if an item is over the limit, else queues its items."""
        try:
            costs = self._costs(job)
        except Exception as err:  # a counter that fails on this input: the caller hears why
            costs = None
            self._fail(job, err)
        if costs is not None:
            self._ready.extend(_Item(job, i, c) for i, c in enumerate(costs))
            return
        with self._lock:
            self._waiting -= len(job.payloads)

    def _costs(self, job: _Job) -> list[int]:
        """Tokens per payload (a group: its conversations' sum), each conversation checked against the cap."""
        convs = job.payloads
        if job.kind == "tokens":
            return self._capped([len(row) for row in convs])
        if job.kind == "groups":
            convs = [c for g in job.payloads for c in g.conversations()]
        counter = getattr(self.model, "count_tokens" if job.kind != "texts" else "count_text_tokens", None)
        if counter is None:  # a model without a counter: an estimate for the budget and the cap
            counts = [len(str(p)) // CHARS_PER_TOKEN + 1 for p in convs]
        else:
            counts = [int(n) for n in counter(convs)]
        costs = self._capped(counts)
        if job.kind != "groups":
            return costs
        sizes = [len(g.answers) for g in job.payloads]
        return [sum(costs[sum(sizes[:k]) : sum(sizes[: k + 1])]) for k in range(len(sizes))]

    def _capped(self, costs: list[int]) -> list[int]:
        cap = self.max_tokens_per_item
        if cap is not None:
            for i, n in enumerate(costs):
                if n > cap:
                    raise LimitExceeded(
                        f"item {i} is {n} tokens; the server accepts at most {cap} tokens per item "
                        "(max_tokens_per_item)",
                        limit="max_tokens_per_item",
                    )
        # The model trims to its own limit, so the budget counts what it will actually read.
        max_length = getattr(self.model, "max_length", None)
        return [min(n, max_length) if isinstance(max_length, int) else n for n in costs]

    def _run(self, batch: list[_Item]) -> None:
        """One model call; if it fails and several callers shared it, each is retried alone."""
        payloads = [it.job.payloads[it.index] for it in batch]
        try:
            scores = self._call(batch[0].job.kind, payloads)
        except Exception as err:
            jobs = list(dict.fromkeys(it.job for it in batch))
            if len(jobs) == 1:
                self._fail(jobs[0], err)
            else:  # one caller's bad input must not fail the others
                for job in jobs:
                    self._run([it for it in batch if it.job is job])
            return
        if self.on_batch is not None:
            self.on_batch(len(batch), sum(it.cost for it in batch))
        for it, s in zip(batch, scores):
            job = it.job
            job.results[it.index] = s
            job.remaining -= 1
            if job.remaining == 0 and not job.finished:
                job.finished = True
                _resolve(job, result=job.results)

    def _call(self, kind: Kind, payloads: list[Any]) -> list[Score]:
        if kind == "conversations":
            fn = self.model.score_detailed
        elif kind == "texts":
            fn = self.model.score_texts
        elif kind == "tokens":
            fn = self.model.score_tokens
        else:  # a model with only score_detailed (the least create_app asks for) scores each answer alone
            fn = getattr(self.model, "score_groups", None) or self._groups_one_by_one
        scores = list(fn(payloads))
        if len(scores) != len(payloads):
            raise RuntimeError(f"the model returned {len(scores)} scores for {len(payloads)} items")
        return scores

    def _groups_one_by_one(self, groups: list[Any]) -> list[list[Score]]:
        flat = self.model.score_detailed([c for g in groups for c in g.conversations()])
        return split_groups(flat, groups)

    def _fail(self, job: _Job, err: BaseException) -> None:
        if not job.finished:
            job.finished = True
            _resolve(job, error=err)

    def _drain(self) -> None:
        """After stop: every job still waiting gets an error instead of hanging."""
        err = RuntimeError("the server is shutting down")
        for item in self._ready:
            self._fail(item.job, err)
        self._ready.clear()
        while True:
            try:
                job = self._jobs.get_nowait()
            except queue.Empty:
                break
            if job is not _STOP:
                self._fail(job, err)
        with self._lock:
            self._waiting = 0


def _resolve(job: _Job, *, result: Any = None, error: BaseException | None = None) -> None:
    def settle() -> None:
        if job.future.done():  # the caller was cancelled
            return
        if error is not None:
            job.future.set_exception(error)
        else:
            job.future.set_result(result)

    try:
        job.loop.call_soon_threadsafe(settle)
    except RuntimeError:  # the caller's loop is closed: nobody is waiting
        pass
