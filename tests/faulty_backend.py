"""A backend that fails on purpose, loaded by the node as a plugin (backend:=faulty_backend:...).

The thing under test is the node's handling of a backend that raises, hangs or runs out of
memory; the faults are real (a real exception class, a real blocked thread, a real failed
allocation), and after ``failures`` faulty calls the real SSD detector answers normally.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence

import numpy as np

from vlm_ros.backends.base import BackendError
from vlm_ros.backends.ssd_coco import SsdCocoBackend
from vlm_ros.core.types import Detection

FAULTS = ("raise", "hang", "oom", "cuda_oom")


class FaultyBackend(SsdCocoBackend):
    name = "faulty"

    def __init__(self, fault: str = "raise", failures: int = 1, hang_s: float = 3.0,
                 **options: object) -> None:
        if fault not in FAULTS:
            raise BackendError(f"fault must be one of {FAULTS}, got {fault!r}")
        super().__init__(**options)
        self.fault, self.hang_s = fault, float(hang_s)
        self._failures_left = int(failures)
        self._lock = threading.Lock()

    def detect(self, rgb: np.ndarray, queries: Sequence[str]) -> list[Detection]:
        with self._lock:
            failing = self._failures_left > 0
            self._failures_left -= 1
        if failing:
            self._fail()
        return super().detect(rgb, queries)

    def _fail(self) -> None:
        if self.fault == "raise":
            raise ValueError("model blew up (injected)")
        if self.fault == "hang":
            time.sleep(self.hang_s)  # a driver or server that stops answering
            return
        if self.fault == "oom":
            np.ones(1 << 46, dtype=np.uint8)  # 64 TiB: the allocator really refuses
        import torch

        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")
