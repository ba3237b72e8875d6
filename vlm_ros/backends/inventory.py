"""`vlm-ros backends`: which backends are installed and usable here, without downloading.

Checking a VLM backend's default model would mean fetching gigabytes from a hub, so by default
this only checks that the adapter and its Python dependencies import, and where its weights would
come from; `load_default=True` also instantiates each backend with its default model.
"""

from __future__ import annotations

import importlib
import importlib.util
from typing import Any

from vlm_ros.backends import REGISTRY, BackendError, create_backend


def _adapter_class(name: str) -> Any:
    module_name, class_name = REGISTRY[name].split(":")
    return getattr(importlib.import_module(module_name), class_name)


def inventory(load_default: bool = False) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for name in sorted(REGISTRY):
        row: dict[str, Any] = {"name": name}
        try:
            cls = _adapter_class(name)
        except ImportError as exc:
            row.update(installed=False, usable=False,
                       error=f"missing Python package {exc.name!r}: pip install 'vlm_ros[vlm]'")
            rows.append(row)
            continue
        row.update(installed=True, open_vocabulary=cls.vocabulary is None,
                   capabilities=sorted(cls.capabilities),
                   resolves_referring_expressions=cls.resolves_referring_expressions)
        if load_default or name == "ssd_coco":  # the default's weights are a local package
            try:
                row.update(usable=True, **create_backend(name).info())
            except BackendError as exc:
                row.update(usable=False, error=str(exc))
        else:
            row["usable"] = "needs a model: set `model` to a hub id or a local folder"
        rows.append(row)
    return rows
