"""Backend registry: config picks the backend by name; adapters are imported only when chosen."""

from __future__ import annotations

import importlib
import inspect
from typing import Any

from vlm_ros.backends.base import Backend, BackendError, CapabilityError
from vlm_ros.backends.hub import model_options, resolve_model

# name -> "module:class".  A new model family is one entry here plus its adapter module.
REGISTRY: dict[str, str] = {
    "ssd_coco": "vlm_ros.backends.ssd_coco:SsdCocoBackend",
    "owl": "vlm_ros.backends.owl:OwlBackend",
    "grounding_dino": "vlm_ros.backends.grounding_dino:GroundingDinoBackend",
    "florence2": "vlm_ros.backends.florence2:Florence2Backend",
    "qwen_vl": "vlm_ros.backends.qwen_vl:QwenVlBackend",
    "openai": "vlm_ros.backends.openai:OpenAiBackend",
    "blip": "vlm_ros.backends.blip:BlipBackend",
}

DEFAULT_BACKEND = "ssd_coco"


def backend_class(name: str) -> type[Backend]:
    """The adapter class registered under ``name`` (or at import path ``module:Class``)."""
    plugin = name not in REGISTRY and ":" in name
    if not plugin and name not in REGISTRY:
        raise BackendError(
            f"unknown backend {name!r}; available: {', '.join(sorted(REGISTRY))} "
            f"(or an import path package.module:ClassName)")
    module_name, _, class_name = (name if plugin else REGISTRY[name]).partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        if plugin:
            raise BackendError(f"backend {name!r}: cannot import {module_name} ({exc})") from exc
        raise BackendError(
            f"backend {name!r} needs packages that are not installed ({exc.name}); "
            f"install them with: pip install 'vlm_ros[vlm]'") from exc
    cls = getattr(module, class_name, None)
    if not (isinstance(cls, type) and issubclass(cls, Backend)):
        raise BackendError(f"backend {name!r}: {class_name} is not a vlm_ros Backend class")
    return cls


def default_model(cls: type[Backend], option: str = "model") -> str | None:
    """The ``model`` (or another model ``option``, e.g. blip's ``question_model``) an adapter
    loads when none is given (its constructor's default)."""
    try:
        parameter = inspect.signature(cls).parameters.get(option)
    except (TypeError, ValueError):
        return None
    if parameter is None or not isinstance(parameter.default, str):
        return None
    return parameter.default


def create_backend(name: str = DEFAULT_BACKEND, **options: Any) -> Backend:
    """Instantiate the backend registered under ``name`` with adapter-specific ``options``.

    ``name`` is a registered id (``vlm-ros backends``) or, for an adapter that lives in another
    package, its import path ``package.module:ClassName`` (a Backend subclass): new model
    families plug in by configuration, without editing this registry.

    For the transformers backends the model's source (and that of a second model option, e.g.
    blip's ``question_model``) is checked before anything loads (``hub.resolve_model``): a
    missing or incomplete folder, or a hub id that is neither cached nor downloadable
    (HF_HUB_OFFLINE, or the hub unreachable), is a one-line BackendError within about a second,
    naming the backend (and the option, for a second model), the model and what to do.
    """
    cls = backend_class(name)
    for option, requirements in model_options(name):
        model = options[option] if option in options else default_model(cls, option)
        if option == "model":
            resolve_model(str(model or ""), requirements, label=name)
        elif model:  # a second model option left empty loads none (blip: question_model="")
            resolve_model(str(model), requirements, label=f"{name} {option}")
    return cls(**options)


__all__ = ["Backend", "BackendError", "CapabilityError", "REGISTRY", "DEFAULT_BACKEND",
           "backend_class", "create_backend", "default_model"]
