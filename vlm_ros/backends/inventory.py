"""`vlm-ros backends`: which backends are installed and usable here, without downloading.

Checking a VLM backend's default model would mean fetching gigabytes from a hub, so by default
this only checks that the adapter and its Python dependencies import, and where its weights would
come from (``weights``: the local cache, a download, or - offline - the one-line error that
loading would give, from the same check as loading: vlm_ros/backends/hub.py); `load_default=True`
also instantiates each backend with its default model.
"""

from __future__ import annotations

import importlib
import importlib.util
from typing import Any

from vlm_ros.backends import REGISTRY, BackendError, create_backend, default_model
from vlm_ros.backends.hub import (
    MODEL_FILES,
    cached_snapshot,
    hub_endpoint,
    missing_files,
    resolve_model,
)


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
        elif name in MODEL_FILES:
            row["model"] = default_model(cls)
            row.update(_weights(name, row["model"] or ""))
        else:
            row["usable"] = "needs a model: set `model` to a hub id or a local folder"
        rows.append(row)
    return rows


def _weights(name: str, model: str) -> dict[str, Any]:
    """Where ``name``'s default ``model`` would load from, without loading it."""
    try:
        source = resolve_model(model, MODEL_FILES[name])
    except BackendError as exc:
        return {"usable": False, "weights": str(exc)}
    snapshot = cached_snapshot(model) if source.kind == "hub" else None
    if source.kind != "hub":
        where = f"local {source.kind} {source.path}"
    elif snapshot is not None and not missing_files(snapshot, MODEL_FILES[name]):
        where = f"local cache {snapshot} (the hub, {hub_endpoint()}, may update it)"
    else:
        where = f"downloaded from the hub ({hub_endpoint()}) on first use"
    return {"usable": "not loaded (vlm-ros backends --load loads it)", "weights": where}
