#!/usr/bin/env python3
"""Fetch the real test photos that do not ship with scikit-image into a local cache folder.

Why this exists: the detector and colour tests must run on real photographs, not synthetic
blobs, but the repository must not carry binary images and the tests must never touch the network.
Every photo below comes from an ordinary package registry (Debian, PyPI) through its own client,
is extracted once, and lives in the git-ignored ``.cache/photos`` folder:

* Debian package ``darknet`` ships ``/usr/share/darknet/data/*.jpg``.  The package is only
  downloaded and unpacked (``apt-get download`` + ``dpkg-deb -x``), never installed, because
  installing it drags in OpenCV system libraries.
* The PyPI wheel ``ultralytics`` holds ``ultralytics/assets/{bus,zidane}.jpg``.  The wheel is
  downloaded without dependencies and read as a zip file; it is never installed or imported.

The script is stdlib-only and idempotent: photos already in the cache are kept, and it prints what
the cache holds.  It exits non-zero with a message that says what went wrong.

Usage::

    python scripts/fetch_test_photos.py [--dest .cache/photos]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DEST = REPO_ROOT / ".cache" / "photos"

DARKNET_PACKAGE = "darknet"
DARKNET_DATA_DIR = "usr/share/darknet/data"
DARKNET_PHOTOS: tuple[str, ...] = (
    "dog.jpg", "person.jpg", "horses.jpg", "giraffe.jpg", "kite.jpg", "eagle.jpg", "scream.jpg",
)

ULTRALYTICS_REQUIREMENT = "ultralytics==8.4.190"
ULTRALYTICS_ASSETS_DIR = "ultralytics/assets"
ULTRALYTICS_PHOTOS: tuple[str, ...] = ("bus.jpg", "zidane.jpg")


class FetchError(RuntimeError):
    """A source could not be fetched; the message says which and why."""


def _missing(dest: Path, names: tuple[str, ...]) -> list[str]:
    return [name for name in names if not (dest / name).is_file()]


def _run(cmd: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, check=False)


def fetch_darknet_photos(dest: Path) -> list[str]:
    """Download (not install) the darknet .deb and copy its sample jpgs; returns names copied."""
    missing = _missing(dest, DARKNET_PHOTOS)
    if not missing:
        return []
    if shutil.which("apt-get") is None or shutil.which("dpkg-deb") is None:
        raise FetchError("apt-get and dpkg-deb are needed to fetch the darknet photos (Debian)")
    with tempfile.TemporaryDirectory(prefix="darknet-deb-") as tmp_name:
        tmp = Path(tmp_name)
        result = _run(["apt-get", "download", DARKNET_PACKAGE], tmp)
        if result.returncode != 0:
            # The package lists may be stale or absent (fresh container): refresh once and retry.
            update = _run(["apt-get", "update"], tmp)
            if update.returncode != 0:
                raise FetchError(
                    "apt-get download darknet failed and apt-get update failed too "
                    f"(are you root?):\n{result.stderr.strip()}\n{update.stderr.strip()}"
                )
            result = _run(["apt-get", "download", DARKNET_PACKAGE], tmp)
        debs = sorted(tmp.glob(f"{DARKNET_PACKAGE}_*.deb"))
        if result.returncode != 0 or not debs:
            raise FetchError(f"apt-get download darknet failed:\n{result.stderr.strip()}")
        extracted = tmp / "root"
        unpack = _run(["dpkg-deb", "-x", str(debs[0]), str(extracted)], tmp)
        if unpack.returncode != 0:
            raise FetchError(f"dpkg-deb -x {debs[0].name} failed:\n{unpack.stderr.strip()}")
        copied = []
        for name in missing:
            source = extracted / DARKNET_DATA_DIR / name
            if not source.is_file():
                raise FetchError(f"{debs[0].name} has no {DARKNET_DATA_DIR}/{name}")
            shutil.copyfile(source, dest / name)
            copied.append(name)
    return copied


def fetch_ultralytics_photos(dest: Path) -> list[str]:
    """Download the ultralytics wheel (no deps, never installed) and read two jpgs out of it."""
    missing = _missing(dest, ULTRALYTICS_PHOTOS)
    if not missing:
        return []
    with tempfile.TemporaryDirectory(prefix="ultralytics-wheel-") as tmp_name:
        tmp = Path(tmp_name)
        cmd = [
            sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
            "--disable-pip-version-check", "-q", ULTRALYTICS_REQUIREMENT, "-d", str(tmp),
        ]
        result = _run(cmd, tmp)
        wheels = sorted(tmp.glob("ultralytics-*.whl"))
        if result.returncode != 0 or not wheels:
            raise FetchError(
                f"pip download {ULTRALYTICS_REQUIREMENT} failed (is pip available for "
                f"{sys.executable} and PyPI reachable?):\n{result.stderr.strip()}"
            )
        copied = []
        with zipfile.ZipFile(wheels[0]) as wheel:
            for name in missing:
                member = f"{ULTRALYTICS_ASSETS_DIR}/{name}"
                try:
                    data = wheel.read(member)
                except KeyError:
                    raise FetchError(f"{wheels[0].name} has no {member}") from None
                (dest / name).write_bytes(data)
                copied.append(name)
    return copied


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dest", type=Path, default=DEFAULT_DEST,
                        help=f"cache folder (default: {DEFAULT_DEST})")
    args = parser.parse_args(argv)
    dest: Path = args.dest.resolve()
    dest.mkdir(parents=True, exist_ok=True)

    failures = []
    for source, fetch in (("darknet .deb", fetch_darknet_photos),
                          ("ultralytics wheel", fetch_ultralytics_photos)):
        try:
            copied = fetch(dest)
        except (FetchError, OSError, zipfile.BadZipFile) as exc:
            failures.append(f"{source}: {exc}")
            continue
        if copied:
            print(f"fetched from {source}: {', '.join(copied)}")

    for path in sorted(dest.glob("*.jpg")):
        print(f"{path}  {path.stat().st_size} bytes")
    if failures:
        print("\nfailed to fetch some photos:\n" + "\n".join(failures), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
