"""Shared plumbing for the transformers-based adapters: device/dtype choice and model loading.

Every adapter loads through ``load_pretrained`` so the behaviour users see is the same for each
model family: a local folder or a hub id; offline when the weights are already on disk
(HF_HUB_OFFLINE=1 or no hub reachable: see vlm_ros/backends/hub.py, decided in about a second,
no hub retries); a clear one-line BackendError with advice when the folder is missing or
incomplete, the id is unknown, the weights are not cached and the hub cannot be reached, or the
GPU runs out of memory (then the model is retried on the CPU, loudly).
"""

from __future__ import annotations

import logging
from typing import Any

from vlm_ros.backends.base import BackendError
from vlm_ros.backends.hub import hub_endpoint, resolve_model

try:
    import torch
except ImportError as exc:  # pragma: no cover - the registry turns this into advice
    raise ImportError("torch is required for the transformers backends", name="torch") from exc

LOG = logging.getLogger("vlm_ros.backends")

DTYPES = {"float16": torch.float16, "bfloat16": torch.bfloat16, "float32": torch.float32}


def resolve_device(device: str = "auto") -> torch.device:
    """"auto" -> cuda when available, else cpu; "cuda" without a GPU is an error, not a surprise."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise BackendError(f"device {device!r} requested but no CUDA GPU is available; "
                           "use device: auto or cpu")
    try:
        return torch.device(device)
    except RuntimeError as exc:
        raise BackendError(f"unknown device {device!r} (auto, cpu, cuda, cuda:N)") from exc


# dtype "auto", per model family (config ``model_type``) - see ``auto_dtype``:
# * CPU: float32 always (half-precision CPU kernels are slow or missing).
# * GPU with bfloat16: bfloat16 for every family.
# * GPU without bfloat16 (pre-Ampere, e.g. T4 / V100):
#   - Qwen-VL families (NO_FP16_FAMILIES): float32.  Qwen2.5-VL in float16 is known to produce
#     garbage output (issue #14); Qwen2-VL and Qwen3-VL share its design and ship bfloat16
#     weights, so they get the same rule.  float16 only when asked for by name, and for the
#     families in FP16_WARNINGS that request is logged as a warning.
#   - florence2: float16 (the model card's own GPU example runs it in float16).
#   - every other family (owlv2 / owlvit, grounding-dino, ...): float16 as before; no float16
#     failure is known to us for them, and it halves their memory.
NO_FP16_FAMILIES = frozenset({"qwen2_vl", "qwen2_5_vl", "qwen3_vl", "qwen3_vl_moe"})
FP16_WARNINGS = {"qwen2_5_vl": "Qwen2.5-VL is known to produce garbage output in float16; "
                               "use dtype auto, bfloat16 or float32"}


def auto_dtype(family: str | None, device_type: str, bf16_supported: bool) -> torch.dtype:
    """What dtype "auto" means for a model ``family`` (config ``model_type``) on a device of type
    ``device_type`` ("cuda", "cpu", ...) that does / does not support bfloat16.  Pure: no GPU query."""
    if device_type != "cuda":
        return torch.float32
    if bf16_supported:
        return torch.bfloat16
    return torch.float32 if family in NO_FP16_FAMILIES else torch.float16


def resolve_dtype(dtype: str, device: torch.device, family: str | None = None) -> torch.dtype:
    """"auto" -> ``auto_dtype`` for this family and device; an explicit name is honoured (float16
    on a family known to break in it is logged as a warning)."""
    if dtype == "auto":
        bf16 = device.type == "cuda" and torch.cuda.is_bf16_supported()
        return auto_dtype(family, device.type, bf16)
    try:
        precision = DTYPES[dtype]
    except KeyError:
        raise BackendError(f"unknown dtype {dtype!r}; use auto, {', '.join(DTYPES)}") from None
    if precision == torch.float16 and family in FP16_WARNINGS:
        LOG.warning("dtype float16 requested: %s", FP16_WARNINGS[family])
    return precision


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def load_pretrained(loader: Any, model: str, **kwargs: Any) -> Any:
    """``loader.from_pretrained(model, **kwargs)`` with errors a robot operator can act on.

    ``loader`` is a transformers model or processor class.  Where the files come from is decided
    first (``hub.resolve_model``): a local folder is loaded as is; a hub id is downloaded when
    the hub answers, else loaded from the local cache's snapshot folder with no hub requests
    (also with HF_HUB_OFFLINE set); a model that is nowhere fails at once, in one line.
    """
    source = resolve_model(model)
    if source.kind != "hub":
        kwargs.setdefault("local_files_only", True)
    try:
        return loader.from_pretrained(source.load_from, **kwargs)
    except (OSError, ValueError) as exc:
        if source.kind == "folder":
            raise BackendError(f"cannot load {loader.__name__} from folder {source.path}: "
                               f"{_first_line(exc)}") from exc
        if source.kind == "cache":
            raise BackendError(f"cannot load {loader.__name__} for {model} from the local cache "
                               f"({source.path}): {_first_line(exc)}") from exc
        raise BackendError(
            f"cannot load {model!r} from the hub ({hub_endpoint()}): {_first_line(exc)}. Check "
            f"the id, or run `huggingface-cli download {model}` and set `model` to the "
            f"downloaded folder") from exc


def place_model(model: Any, device: torch.device, dtype: torch.dtype) -> tuple[Any, torch.device]:
    """Move ``model`` to ``device``/``dtype`` in eval mode; on GPU OOM fall back to the CPU."""
    try:
        return model.to(device=device, dtype=dtype).eval(), device
    except torch.cuda.OutOfMemoryError:
        LOG.error("out of GPU memory loading %s; falling back to the CPU (slow). Use a smaller "
                  "model, dtype float16, or free the GPU.", type(model).__name__)
        torch.cuda.empty_cache()
        return model.to(device="cpu", dtype=torch.float32).eval(), torch.device("cpu")


def load_model(loader: Any, model: str, device: str = "auto", dtype: str = "auto",
               **kwargs: Any) -> tuple[Any, torch.device, torch.dtype]:
    """Load ``model`` with ``loader`` and place it: (model, device, dtype) as they really are -
    after a GPU out-of-memory fallback that is the CPU in float32, and inputs must follow."""
    wanted = resolve_device(device)
    precision = resolve_dtype(dtype, wanted)
    # Loaded straight in the target precision: no float32 copy of a large model on the way.
    loaded = load_pretrained(loader, model, dtype=precision, **kwargs)
    placed, where = place_model(loaded, wanted, precision)
    return placed, where, next(placed.parameters()).dtype


def to_device(batch: Any, device: torch.device, dtype: torch.dtype) -> dict[str, Any]:
    """A processor's output as model kwargs on ``device``; floating tensors take ``dtype``
    (token ids and masks stay integer)."""
    moved: dict[str, Any] = {}
    for key, value in batch.items():
        if isinstance(value, torch.Tensor):
            value = value.to(device)
            if value.is_floating_point():
                value = value.to(dtype)
        moved[key] = value
    return moved
