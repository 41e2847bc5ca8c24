"""Micro-batching: concurrent requests merged into one model call, run on the model's one thread.

A batch holds up to ``max_batch`` texts and waits at most ``max_wait`` for more (less once as many requests
came as last time); the call runs on a worker thread so that the event loop keeps serving.
"""
from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable


class QueueFull(Exception):
    pass


def model_thread() -> ThreadPoolExecutor:
    """The one thread that loads the model and runs all of its work.

    PyTorch's CPU kernels run in OpenMP thread teams, one team per thread that calls them. Once
    two threads have called (loading on one, predicting on another), libgomp manages more threads
    than there are cores and stops spinning between parallel regions; an LSTM enters one region
    per time step, so every step then waits for sleeping threads to wake (bench/RESULTS.md).
    """
    return ThreadPoolExecutor(1, thread_name_prefix="revsent-model")


class MicroBatcher:
    """Merges concurrent requests into model calls of at most ``max_batch`` texts.

    A call starts when the batch is full, ``max_wait`` seconds after its first request came, or as
    soon as it holds as many requests as the call before it and no more are queued. With N clients
    each sending again when answered, that is the moment all N are in: waiting out ``max_wait``
    would only idle the model (bench/RESULTS.md, "Serving"). When fewer come than last time, the
    batch waits out ``max_wait`` as before, and the next one expects as many as it got.
    A request is never split: one larger than ``max_batch`` runs alone. ``run`` (texts -> n rows: an
    (n, C) array, or anything sliced by rows as one is, such as ``service.Scores``) runs on
    ``executor``'s one worker thread (the model's: see ``model_thread``), never on the event loop.
    """

    def __init__(self, run: Callable[[list[str]], Any], max_batch: int, max_wait: float, max_queue: int,
                 on_batch: Callable[[int], None] = lambda n: None, executor: ThreadPoolExecutor | None = None):
        self.run, self.max_batch, self.max_wait, self.max_queue = run, max_batch, max_wait, max_queue
        self.on_batch = on_batch
        self.waiting = 0  # texts queued, not yet running
        self._queue: asyncio.Queue = asyncio.Queue()
        self._carry: tuple | None = None
        self._expected = 1 << 30  # requests in the last call: a batch that has as many goes at once (none yet)
        self._executor = executor or model_thread()
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._serve())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        self._executor.shutdown(wait=True)

    async def on_model_thread(self, fn: Callable, *args):
        """Run ``fn(*args)`` on the model's thread, between batches (explanations do)."""
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    async def submit(self, texts: list[str]):
        """The rows of ``run``'s answer for ``texts``, once their batch has run; QueueFull when too many wait."""
        if self.waiting + len(texts) > self.max_queue:
            raise QueueFull(f"{self.waiting} texts are waiting for the model (at most {self.max_queue}); retry later")
        future = asyncio.get_running_loop().create_future()
        self.waiting += len(texts)
        self._queue.put_nowait((texts, future))
        return await future

    async def _next(self, timeout: float | None):
        if self._carry is not None:
            item, self._carry = self._carry, None
            return item
        if timeout is None:
            return await self._queue.get()
        if timeout <= 0:
            return self._queue.get_nowait()
        return await asyncio.wait_for(self._queue.get(), timeout)

    async def _serve(self) -> None:
        while True:
            await self._call(await self._batch())

    async def _batch(self) -> list[tuple]:
        """The requests of the next model call: (texts, future) each, in the order they came."""
        loop = asyncio.get_running_loop()
        group = [await self._next(None)]
        count = len(group[0][0])
        deadline = loop.time() + self.max_wait
        while count < self.max_batch:
            if len(group) >= self._expected and self._queue.empty():
                break
            try:
                item = await self._next(deadline - loop.time())
            except (asyncio.TimeoutError, asyncio.QueueEmpty):
                break
            if count + len(item[0]) > self.max_batch:
                self._carry = item  # first in the next batch
                break
            group.append(item)
            count += len(item[0])
        self._expected = len(group)
        return group

    async def _call(self, group: list[tuple]) -> None:
        """One model call for ``group``; each request's future gets its own rows, or the model's error."""
        texts = [text for item, _ in group for text in item]
        self.waiting -= len(texts)
        self.on_batch(len(texts))
        try:
            proba = await asyncio.get_running_loop().run_in_executor(self._executor, self.run, texts)
        except Exception as exc:  # the model failed: every request of the batch hears it
            for _, future in group:
                if not future.done():
                    future.set_exception(exc)
            return
        start = 0
        for item, future in group:
            if not future.done():  # a client that went away has cancelled its future
                future.set_result(proba[start: start + len(item)])
            start += len(item)
