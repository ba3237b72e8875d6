"""The model, guarded: backend calls on their own thread, with a deadline.

A hung backend costs one error, not the node: the caller waits at most ``timeout_s``, and while
the call that timed out is still running every further call is refused at once ("backend
unavailable") instead of queueing behind it.  Running out of memory (numpy's MemoryError,
torch's CUDA out-of-memory) is reported the same way.
"""

from __future__ import annotations

import concurrent.futures
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")
_POLL_S = 0.05  # how often a waiting caller gets control back (to act on a stop)


class ModelUnavailable(Exception):
    """The backend did not answer in time, is still stuck, or ran out of memory."""


class ModelGuard:
    def __init__(self, backend_name: str, timeout_s: float) -> None:
        self.backend_name = backend_name
        self.timeout_s = timeout_s  # 0 = wait forever
        self._pool = concurrent.futures.ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="vlm_ros_model")
        self._stuck: concurrent.futures.Future | None = None
        self._stuck_since = 0.0
        self.recovered: Callable[[], None] | None = None  # called once when a stuck call ends

    def stuck_for(self) -> float | None:
        """Seconds the call that timed out has been running; None when none is stuck."""
        stuck = self._stuck
        if stuck is None or stuck.done():
            return None
        return time.monotonic() - self._stuck_since

    def submit(self, call: Callable[[], T]) -> concurrent.futures.Future[T]:
        """Start ``call()`` on the model thread (ModelUnavailable while a call is stuck)."""
        stuck = self._stuck
        if stuck is not None:
            if not stuck.done():
                raise ModelUnavailable(
                    f"backend {self.backend_name} unavailable: still inside a call that timed "
                    f"out {time.monotonic() - self._stuck_since:.0f} s ago")
            self._stuck = None
            if self.recovered is not None:
                self.recovered()
        return self._pool.submit(call)

    def run(self, call: Callable[[], T], while_waiting: Callable[[], None] | None = None) -> T:
        """``call()`` on the model thread, within the deadline; ``while_waiting()`` runs on the
        caller's thread every few tens of ms meanwhile (the node applies stops there).

        Raises ModelUnavailable on a timeout, while an earlier call is stuck, or when the model
        ran out of memory; other exceptions (BackendError) pass through.
        """
        future = self.submit(call)
        started = time.monotonic()
        while True:
            waited = time.monotonic() - started
            if self.timeout_s > 0 and waited >= self.timeout_s:
                self.mark_stuck(future, started)
                raise ModelUnavailable(
                    f"backend {self.backend_name} did not answer within {self.timeout_s:g} s "
                    f"(model_timeout_s); no goal from this command")
            done, _ = concurrent.futures.wait([future], timeout=_POLL_S)
            if done:
                return self.result(future)
            if while_waiting is not None:
                while_waiting()

    def result(self, future: concurrent.futures.Future[T]) -> T:
        """A finished call's value, with out-of-memory turned into ModelUnavailable."""
        try:
            return future.result()
        except MemoryError as exc:
            raise ModelUnavailable(self._out_of_memory(exc)) from exc
        except RuntimeError as exc:  # torch reports CUDA OOM as a RuntimeError subclass
            if "out of memory" not in str(exc).lower():
                raise
            raise ModelUnavailable(self._out_of_memory(exc)) from exc

    def overdue(self, submitted: float) -> bool:
        """Has a call submitted at ``submitted`` (monotonic) run past the deadline?"""
        return self.timeout_s > 0 and time.monotonic() - submitted > self.timeout_s

    def mark_stuck(self, future: concurrent.futures.Future, since: float) -> None:
        self._stuck, self._stuck_since = future, since

    def shutdown(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)  # a stuck call must not block exit

    def _out_of_memory(self, exc: BaseException) -> str:
        return (f"backend {self.backend_name} ran out of memory ({exc}); no goal from this "
                f"command (a smaller model, dtype or image size, or device:=cpu, avoids it)")
