"""Real-photo scenes for the photo demo and tests: a photo, a depth image and intrinsics.

The photos are real (scikit-image's coffee.png: a red cup on a saucer on a wooden table).  Their
depth is synthetic and says so: a tabletop plane seen from a camera pitched down, so 3D goals can
be computed end to end.  `two_cups()` puts the photo beside a copy whose red cup is recoloured
blue, giving colour, left/right and ambiguity cases on real pixels.

The camera model keeps the photo's real scale: coffee.png is a close-up of an espresso cup (about
8 cm across, 239 of the 600 pixels), so at the synthetic table's ~0.78 m the lens must be a narrow
one (:data:`COFFEE_HFOV_DEG`).  A 60 degree lens there would make the cup 0.36 m wide, which the
safety gate rightly refuses to grasp (``max_grasp_width_m``).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import cv2
import numpy as np

from vlm_ros.core.types import CameraIntrinsics


def skimage_photo(name: str) -> np.ndarray:
    """RGB uint8 of a photo that ships with scikit-image (found without importing it)."""
    spec = importlib.util.find_spec("skimage")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("scikit-image is not installed (pip install scikit-image)")
    path = Path(spec.submodule_search_locations[0]) / "data" / name
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise FileNotFoundError(f"{path} is missing from the scikit-image install")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def recolor_reds(rgb: np.ndarray, hue_deg: float) -> np.ndarray:
    """Move strongly red, saturated pixels to ``hue_deg`` (OpenCV hue is degrees / 2)."""
    hsv = cv2.cvtColor(rgb, cv2.COLOR_RGB2HSV)
    hue, sat, val = hsv[..., 0], hsv[..., 1], hsv[..., 2]
    # The cup glaze sits at hue <= 7 with saturation >= 200; the wooden table at hue 9-12.
    red = ((hue <= 7) | (hue >= 172)) & (sat >= 170) & (val >= 40)
    hsv[..., 0] = np.where(red, np.uint8(int(hue_deg / 2) % 180), hue)
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)


def tabletop_depth(width: int, height: int, near_m: float = 0.55,
                   far_m: float = 0.95) -> np.ndarray:
    """A table plane receding from the bottom row (near) to the top row (far)."""
    rows = np.linspace(far_m, near_m, height, dtype=np.float32)
    return np.repeat(rows[:, None], width, axis=1)


def intrinsics_for(width: int, height: int, hfov_deg: float = 60.0) -> CameraIntrinsics:
    fx = 0.5 * width / np.tan(np.radians(hfov_deg) / 2.0)
    return CameraIntrinsics(fx, fx, width / 2.0, height / 2.0, width, height)


# Horizontal field of view of coffee.png (600 px wide) that gives the espresso cup its real size
# (~8 cm) at the synthetic table's depth.
COFFEE_HFOV_DEG = 15.0


def coffee() -> tuple[np.ndarray, np.ndarray, CameraIntrinsics]:
    rgb = skimage_photo("coffee.png")
    h, w = rgb.shape[:2]
    return rgb, tabletop_depth(w, h), intrinsics_for(w, h, COFFEE_HFOV_DEG)


def two_cups() -> tuple[np.ndarray, np.ndarray, CameraIntrinsics]:
    """Left: the original red cup.  Right: the same photo with the cup recoloured blue.

    The same lens as :func:`coffee` on a sensor twice as wide: the cups keep their real size."""
    red = skimage_photo("coffee.png")
    rgb = np.concatenate([red, recolor_reds(red, 220.0)], axis=1)
    h, w = rgb.shape[:2]
    k = intrinsics_for(red.shape[1], h, COFFEE_HFOV_DEG)
    return rgb, tabletop_depth(w, h), CameraIntrinsics(k.fx, k.fy, w / 2.0, h / 2.0, w, h)
