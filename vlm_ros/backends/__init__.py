"""Backend registry: config picks the backend by name; adapters are imported only when chosen."""

from __future__ import annotations

import importlib
from typing import Any

from vlm_ros.backends.base import Backend, BackendError

# name -> "module:class".  A new model family is one entry here plus its adapter module.
REGISTRY: dict[str, str] = {
    "ssd_coco": "vlm_ros.backends.ssd_coco:SsdCocoBackend",
}

DEFAULT_BACKEND = "ssd_coco"


def create_backend(name: str = DEFAULT_BACKEND, **options: Any) -> Backend:
    """Instantiate the backend registered under ``name`` with adapter-specific ``options``."""
    try:
        target = REGISTRY[name]
    except KeyError:
        raise BackendError(
            f"unknown backend {name!r}; available: {', '.join(sorted(REGISTRY))}"
        ) from None
    module_name, class_name = target.split(":")
    cls = getattr(importlib.import_module(module_name), class_name)
    return cls(**options)


__all__ = ["Backend", "BackendError", "REGISTRY", "DEFAULT_BACKEND", "create_backend"]
