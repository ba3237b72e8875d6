"""Every torch adapter is a TorchBackend and leaves the shared parts to the template.

Static proof from the adapters' source (ast, nothing is run to check it): no adapter module takes
its own lock, enters ``torch.inference_mode`` / ``no_grad``, checks images with ``require_rgb``,
loads through ``hf.load_model`` or overrides the template's query / loading / inference methods;
each implements the stages instead.  Overriding ``detect`` / ``describe`` / ``ask`` is allowed
only to refuse (raise) or to add a precondition before the template's own (``super()``).
"""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import pytest

from vlm_ros.backends import REGISTRY, backend_class
from vlm_ros.backends.torch_base import TorchBackend

TORCH_ADAPTERS = ("owl", "grounding_dino", "florence2", "qwen_vl", "blip")
# The template's methods an adapter must not re-implement.
SHARED_METHODS = frozenset({"infer", "request", "normalize_queries", "check_image", "exclusive",
                            "load", "load_another", "generate_text", "score_threshold"})
# Entry points an adapter may override only to refuse or to guard the template's own.
GUARDED_METHODS = frozenset({"detect", "describe", "ask"})
FORBIDDEN_NAMES = {
    "threading": "its own lock (the template's self._lock is the one)",
    "Lock": "its own lock", "RLock": "its own lock", "_lock": "the template's lock directly",
    "inference_mode": "torch.inference_mode (the template's infer / exclusive enter it)",
    "no_grad": "torch.no_grad (the template's infer / exclusive enter inference mode)",
    "require_rgb": "require_rgb (the template's check_image / request check images)",
    "load_model": "hf.load_model (the template's load / load_another)",
}


def problems(source: str) -> list[str]:
    """What in ``source`` (an adapter module) re-implements the template's shared parts."""
    found: list[str] = []
    for node in ast.walk(ast.parse(source)):
        line = getattr(node, "lineno", 0)
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name.split(".")[0] for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            names = [node.module or "", *(alias.name for alias in node.names)]
        elif isinstance(node, ast.Name):
            names = [node.id]
        elif isinstance(node, ast.Attribute):
            names = [node.attr]
        found += [f"line {line}: {FORBIDDEN_NAMES[name]}" for name in names
                  if name in FORBIDDEN_NAMES]
        if isinstance(node, ast.ClassDef):
            found += _class_problems(node)
    return found


def _class_problems(cls: ast.ClassDef) -> list[str]:
    found = []
    for item in cls.body:
        if not isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        if item.name in SHARED_METHODS:
            found.append(f"line {item.lineno}: {cls.name}.{item.name} re-implements the "
                         "template's")
        elif item.name in GUARDED_METHODS and not _refuses_or_defers(item):
            found.append(f"line {item.lineno}: {cls.name}.{item.name} neither refuses nor "
                         "defers to the template (super())")
    return found


def _refuses_or_defers(function: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    """The body only raises, or returns ``super().<same method>(...)``."""
    body = [s for s in function.body
            if not (isinstance(s, ast.Expr) and isinstance(s.value, ast.Constant))]  # docstring
    if len(body) == 1 and isinstance(body[0], ast.Raise):
        return True
    last = body[-1] if body else None
    return (isinstance(last, ast.Return) and isinstance(last.value, ast.Call)
            and isinstance(last.value.func, ast.Attribute)
            and last.value.func.attr == function.name
            and isinstance(last.value.func.value, ast.Call)
            and isinstance(last.value.func.value.func, ast.Name)
            and last.value.func.value.func.id == "super")


@pytest.mark.parametrize("name", TORCH_ADAPTERS)
def test_every_torch_adapter_subclasses_the_template(name: str) -> None:
    cls = backend_class(name)
    assert issubclass(cls, TorchBackend), name
    # It implements the stages itself: the model call is the family's part.
    own = vars(cls)
    assert "preprocess" in own and "forward" in own, name
    assert "postprocess" in own or "postprocess_text" in own, name
    if {"describe", "ask"} & cls.capabilities:
        assert "postprocess_text" in own, name


@pytest.mark.parametrize("name", TORCH_ADAPTERS)
def test_no_torch_adapter_re_implements_the_shared_parts(name: str) -> None:
    source = Path(inspect.getfile(backend_class(name))).read_text(encoding="utf-8")
    assert problems(source) == [], name


def test_every_transformers_backend_is_on_the_template() -> None:
    """A new torch adapter registered later is covered by this file, not silently skipped."""
    torch_based = {name for name in REGISTRY if name not in ("ssd_coco", "openai")}
    assert torch_based == set(TORCH_ADAPTERS)


def test_the_check_finds_what_it_forbids() -> None:
    """The checker is not vacuous: each shared part, re-implemented, is reported."""
    source = '''
import threading
import torch
from vlm_ros.backends.base import require_rgb
from vlm_ros.backends.hf import load_model


class Adapter(TorchBackend):
    def __init__(self):
        self._guard = threading.Lock()

    def request(self, rgb, queries):
        return None

    def detect(self, rgb, queries):
        require_rgb(rgb, "x")
        with torch.inference_mode():
            return []

    def ask(self, rgb, question):
        if not question:
            raise ValueError(question)
        return super().ask(rgb, question)
'''
    found = "\n".join(problems(source))
    for words in ("its own lock", "torch.inference_mode", "require_rgb", "hf.load_model",
                  "Adapter.request re-implements", "Adapter.detect neither refuses"):
        assert words in found, words
    assert "Adapter.ask" not in found  # a guard before the template's own is allowed
    # The template itself is where these live.
    template = Path(inspect.getfile(TorchBackend)).read_text(encoding="utf-8")
    assert any("inference_mode" in p for p in problems(template))
    assert any("its own lock" in p for p in problems(template))
