"""Real photographs for tests, found offline.

Why real photos: detector and colour tests on synthetic blobs prove little about the camera images
the robot sees.  The photos come from two places, neither of which needs the network at test time:

* scikit-image's bundled data folder (coffee, chelsea, astronaut, motorcycle_left, rocket), found
  through ``importlib.util.find_spec`` so nothing downloads;
* ``.cache/photos`` (git-ignored), filled once by ``scripts/fetch_test_photos.py`` from the darknet
  Debian package and the ultralytics wheel.

A missing photo is an error that says how to fetch it, never a silent skip: a skipped detector test
looks exactly like a passing one in a CI summary.
"""

from __future__ import annotations

import importlib.util
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np

REPO_ROOT = Path(__file__).resolve().parent.parent
CACHE_DIR = REPO_ROOT / ".cache" / "photos"
FETCH_HINT = f"run: python {REPO_ROOT / 'scripts' / 'fetch_test_photos.py'}"

# photo name -> file name inside skimage/data
SKIMAGE_PHOTOS: dict[str, str] = {
    "coffee": "coffee.png",
    "chelsea": "chelsea.png",
    "astronaut": "astronaut.png",
    "motorcycle_left": "motorcycle_left.png",
    "rocket": "rocket.jpg",
}
# photo name -> file name inside .cache/photos
CACHED_PHOTOS: dict[str, str] = {
    name: f"{name}.jpg"
    for name in ("dog", "person", "horses", "giraffe", "kite", "eagle", "scream", "bus", "zidane")
}


class PhotoMissingError(FileNotFoundError):
    """A test photo is not on disk; the message says how to get it."""


def _skimage_data_dir() -> Path:
    spec = importlib.util.find_spec("skimage")
    if spec is None or not spec.submodule_search_locations:
        raise PhotoMissingError("scikit-image is not installed; pip install scikit-image")
    return Path(spec.submodule_search_locations[0]) / "data"


def photo_path(name: str) -> Path:
    """Path of the photo called ``name`` ("coffee", "dog", "bus" ...); raises if it is missing."""
    if name in SKIMAGE_PHOTOS:
        path = _skimage_data_dir() / SKIMAGE_PHOTOS[name]
        if not path.is_file():
            raise PhotoMissingError(f"{path} is missing from the installed scikit-image")
        return path
    if name in CACHED_PHOTOS:
        path = CACHE_DIR / CACHED_PHOTOS[name]
        if not path.is_file():
            raise PhotoMissingError(f"test photo {path} is missing; {FETCH_HINT}")
        return path
    known = ", ".join(sorted({*SKIMAGE_PHOTOS, *CACHED_PHOTOS}))
    raise KeyError(f"unknown test photo {name!r}; known: {known}")


@lru_cache(maxsize=32)
def _load_cached(name: str) -> np.ndarray:
    path = photo_path(name)
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise PhotoMissingError(f"could not decode {path}; delete it and {FETCH_HINT}")
    rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    rgb.setflags(write=False)
    return rgb


def load_photo(name: str) -> np.ndarray:
    """The photo as an HxWx3 uint8 RGB array (a fresh, writable copy each call)."""
    return _load_cached(name).copy()
