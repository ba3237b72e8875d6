"""Where a transformers backend's model comes from, decided before anything is loaded.

A model is a local folder or a hub id.  Offline (no network, or HF_HUB_OFFLINE set) the hub
libraries retry each file for half a minute or more before they give up, so the answer is found
here first, in about a second at most:

* a folder: it must exist and hold the files the backend's loader reads (``MODEL_FILES``, and
  ``OPTION_MODEL_FILES`` for a second model such as blip's ``question_model``);
  otherwise the error names what is missing (never a download hint for a path);
* a hub id with HF_HUB_OFFLINE set: the local hub cache, or a one-line error saying what to do;
* a hub id otherwise: one short probe of the hub endpoint (HF_ENDPOINT or https://huggingface.co,
  ``PROBE_TIMEOUT_S``, remembered for the process).  Reachable: the hub libraries download or
  update as usual.  Unreachable: the cached snapshot folder is loaded as a local folder (no hub
  requests at all), or, when the model is not cached, a one-line error.

Only the standard library is imported here at module level (no torch), so the registry can run
these checks before it imports an adapter.
"""

from __future__ import annotations

import json
import os
import re
import threading
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from vlm_ros.backends.base import BackendError

DEFAULT_ENDPOINT = "https://huggingface.co"
PROBE_TIMEOUT_S = 1.0  # one HEAD request; a hub that answers at all answers well within this


class Requirement(NamedTuple):
    """One thing a model folder must hold: ``alternatives`` are the file sets that each satisfy
    it (all files of one set present); ``what`` names it in messages."""

    what: str
    alternatives: tuple[tuple[str, ...], ...]


CONFIG = Requirement("config.json", (("config.json",),))
WEIGHTS = Requirement(
    "a weights file (model.safetensors or pytorch_model.bin, or a *.index.json with its shards)",
    (("model.safetensors",), ("model.safetensors.index.json",), ("pytorch_model.bin",),
     ("pytorch_model.bin.index.json",)))
# transformers 5 writes the image processor's settings into processor_config.json, older
# versions (and most hub repositories) into preprocessor_config.json.
IMAGE_PROCESSOR = Requirement("preprocessor_config.json (or processor_config.json)",
                              (("preprocessor_config.json",), ("processor_config.json",)))
BPE_TOKENIZER = Requirement("tokenizer files (tokenizer.json, or vocab.json and merges.txt)",
                            (("tokenizer.json",), ("vocab.json", "merges.txt")))
WORDPIECE_TOKENIZER = Requirement("tokenizer files (tokenizer.json or vocab.txt)",
                                  (("tokenizer.json",), ("vocab.txt",)))
# Any of the tokenizers a language model behind BLIP-2 / InstructBLIP brings: BERT (BLIP VQA),
# byte-level BPE (OPT), SentencePiece (Flan-T5: spiece.model, Vicuna: tokenizer.model).
ANY_TOKENIZER = Requirement(
    "tokenizer files (tokenizer.json, vocab.txt, vocab.json and merges.txt, spiece.model or "
    "tokenizer.model)",
    (("tokenizer.json",), ("vocab.txt",), ("vocab.json", "merges.txt"), ("spiece.model",),
     ("tokenizer.model",)))

# backend name -> the files its loader reads from a model folder (or cached snapshot).
MODEL_FILES: dict[str, tuple[Requirement, ...]] = {
    "owl": (CONFIG, WEIGHTS, IMAGE_PROCESSOR, BPE_TOKENIZER),  # CLIP tokenizer
    "grounding_dino": (CONFIG, WEIGHTS, IMAGE_PROCESSOR, WORDPIECE_TOKENIZER),  # BERT tokenizer
    "florence2": (CONFIG, WEIGHTS, IMAGE_PROCESSOR, BPE_TOKENIZER),  # BART tokenizer
    "qwen_vl": (CONFIG, WEIGHTS, IMAGE_PROCESSOR, BPE_TOKENIZER),  # Qwen2 tokenizer
    "blip": (CONFIG, WEIGHTS, IMAGE_PROCESSOR, WORDPIECE_TOKENIZER),  # captions: BERT tokenizer
}
# backend name -> {option: files} for the model folders a backend loads from options other than
# `model`, checked the same way (an empty option loads no model and is not checked).  blip's
# question model is BLIP VQA (BERT tokenizer) or a BLIP-2 / InstructBLIP checkpoint.
OPTION_MODEL_FILES: dict[str, dict[str, tuple[Requirement, ...]]] = {
    "blip": {"question_model": (CONFIG, WEIGHTS, IMAGE_PROCESSOR, ANY_TOKENIZER)},
}


def model_options(backend: str) -> list[tuple[str, tuple[Requirement, ...]]]:
    """(option, files) for each model folder ``backend`` loads: ``model`` first, then the
    ``OPTION_MODEL_FILES``; [] for a backend without model files (ssd_coco, openai, plugins)."""
    if backend not in MODEL_FILES:
        return []
    return [("model", MODEL_FILES[backend]), *OPTION_MODEL_FILES.get(backend, {}).items()]

_HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*(/[A-Za-z0-9][\w.-]*)?")
_probes: dict[str, bool] = {}
_probes_lock = threading.Lock()


@dataclass(frozen=True)
class ModelSource:
    """Where ``model`` will be loaded from: ``kind`` is "folder", "cache" or "hub"; ``path`` is
    the folder to load (None for "hub": the hub libraries resolve the id themselves)."""

    model: str
    kind: str
    path: Path | None = None

    @property
    def load_from(self) -> str:
        """What to hand to ``from_pretrained``: the folder when there is one, else the id."""
        return str(self.path) if self.path is not None else self.model


def hub_endpoint() -> str:
    """The hub the libraries would talk to (HF_ENDPOINT, else huggingface.co)."""
    return (os.environ.get("HF_ENDPOINT") or DEFAULT_ENDPOINT).rstrip("/")


def hub_offline() -> str:
    """The variable that asks for the local cache only ("HF_HUB_OFFLINE", or transformers'
    older "TRANSFORMERS_OFFLINE"), or "" when neither does.  True values as huggingface_hub
    reads them: 1, ON, YES, TRUE."""
    for variable in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        if os.environ.get(variable, "").strip().upper() in ("1", "ON", "YES", "TRUE"):
            return variable
    return ""


def _probe(endpoint: str, result: list[bool]) -> None:
    request = urllib.request.Request(endpoint + "/", method="HEAD")
    try:
        with urllib.request.urlopen(request, timeout=PROBE_TIMEOUT_S):
            result.append(True)
    except urllib.error.HTTPError:
        result.append(True)  # an HTTP status from the hub is an answer: it is reachable
    except (OSError, ValueError):
        result.append(False)  # refused, no route, unknown host, timeout, TLS failure, bad URL


def hub_reachable(endpoint: str | None = None) -> bool:
    """Whether ``endpoint`` (default: ``hub_endpoint()``) answers an HTTP HEAD within
    ``PROBE_TIMEOUT_S``; probed once per endpoint and process.  The probe runs in a daemon
    thread so that a name lookup that hangs (which socket timeouts do not cover) cannot hold
    the caller past the limit either."""
    endpoint = (endpoint or hub_endpoint()).rstrip("/")
    with _probes_lock:
        if endpoint in _probes:
            return _probes[endpoint]
        result: list[bool] = []
        thread = threading.Thread(target=_probe, args=(endpoint, result), daemon=True,
                                  name="vlm_ros-hub-probe")
        thread.start()
        thread.join(PROBE_TIMEOUT_S + 0.2)
        _probes[endpoint] = bool(result and result[0])
        return _probes[endpoint]


def looks_like_hub_id(model: str) -> bool:
    """"name" or "owner/name" in the hub's alphabet; anything else can only be a path."""
    return _HUB_ID.fullmatch(model) is not None and not model.endswith((".", "-"))


def hub_cache_dir() -> Path:
    """The hub cache folder the libraries use (HF_HUB_CACHE / HF_HOME aware)."""
    try:
        from huggingface_hub import constants
    except ImportError:  # pragma: no cover - transformers depends on huggingface_hub
        return Path("~/.cache/huggingface/hub").expanduser()
    return Path(constants.HF_HUB_CACHE)


def cached_snapshot(model: str) -> Path | None:
    """The local cache's snapshot folder of hub id ``model`` (its main revision), or None."""
    folder = hub_cache_dir() / f"models--{model.replace('/', '--')}"
    ref = folder / "refs" / "main"
    try:
        revision = ref.read_text(encoding="utf-8").strip()
    except OSError:
        revision = ""
    snapshots = folder / "snapshots"
    if revision and (snapshots / revision).is_dir():
        return snapshots / revision
    # No refs/main (e.g. copied without it): a single snapshot is unambiguous.
    candidates = sorted(p for p in snapshots.iterdir() if p.is_dir()) if snapshots.is_dir() \
        else []
    return candidates[0] if len(candidates) == 1 else None


def missing_files(folder: Path, requirements: tuple[Requirement, ...]) -> list[str]:
    """What ``folder`` lacks of ``requirements``, in words naming the file(s).  A sharded
    checkpoint's index counts only with every shard it lists; missing shards are named."""
    missing: list[str] = []
    for requirement in requirements:
        shortfalls = [_shortfall(folder, alternative) for alternative in requirement.alternatives]
        if all(shortfalls):
            shards = [s for s in shortfalls if s.startswith("weight shard")]
            missing.append(shards[0] if shards else requirement.what)
    return missing


def _shortfall(folder: Path, alternative: tuple[str, ...]) -> str:
    """"" when ``folder`` holds every file of ``alternative``, else what it lacks."""
    absent = [name for name in alternative if not (folder / name).is_file()]
    if absent:
        return ", ".join(absent)
    shards = [shard for name in alternative if name.endswith(".index.json")
              for shard in _absent_shards(folder, name)]
    return f"weight shard(s) {', '.join(shards)}" if shards else ""


def _absent_shards(folder: Path, index: str) -> list[str]:
    try:
        shards = json.loads((folder / index).read_text(encoding="utf-8"))["weight_map"].values()
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return [f"(unreadable {index})"]
    return sorted({str(shard) for shard in shards if not (folder / str(shard)).is_file()})


def _home(path: Path) -> str:
    home = str(Path.home())
    text = str(path)
    return "~" + text[len(home):] if home != "/" and text.startswith(home + os.sep) else text


def resolve_model(model: str, requirements: tuple[Requirement, ...] = (),
                  label: str = "") -> ModelSource:
    """Where ``model`` (a folder or hub id) loads from, or a one-line BackendError saying why it
    cannot be loaded here and what to do.  ``requirements``: the files a folder or cached
    snapshot must hold (``MODEL_FILES[backend]``); ``label`` prefixes the error ("owl: ...")."""
    prefix = f"{label}: " if label else ""
    if not model:
        raise BackendError(f"{prefix}no model given: set `model` to a hub id or a local folder")
    path = Path(model).expanduser()
    if not looks_like_hub_id(model) or path.exists():
        if not path.exists():
            raise BackendError(f"{prefix}no such folder: {path}")
        if not path.is_dir():
            raise BackendError(f"{prefix}not a folder: {path} (pass the folder that holds "
                               "config.json and the weights)")
        missing = missing_files(path, requirements)
        if missing:
            raise BackendError(
                f"{prefix}folder {path} is missing {', '.join(missing)}: copy the complete model "
                f"folder (as written by save_pretrained or `huggingface-cli download`)")
        return ModelSource(model, "folder", path)

    endpoint = hub_endpoint()
    offline = hub_offline()
    if offline:
        why = f"{offline} is set"
    elif hub_reachable(endpoint):
        return ModelSource(model, "hub")
    else:
        why = f"the hub ({endpoint}) is unreachable"
    advice = (f"download it on a machine with internet (`huggingface-cli download {model}`) and "
              f"copy {_home(hub_cache_dir())}, or pass --model /path/to/folder")
    snapshot = cached_snapshot(model)
    if snapshot is None:
        raise BackendError(f"{prefix}model {model} is not in the local cache and {why}: {advice}")
    missing = missing_files(snapshot, requirements)
    if missing:
        raise BackendError(f"{prefix}model {model} is only partly in the local cache (missing "
                           f"{', '.join(missing)}) and {why}: {advice}")
    return ModelSource(model, "cache", snapshot)
