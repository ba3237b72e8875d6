#!/usr/bin/env python3
"""Record what the default detector finds on the real test photos through OpenCV 4's TensorFlow
reader (``runtime=opencv_tf``): tests/data/ssd_coco_reference.json.

Why: OpenCV 5.1 removed that reader, so the ONNX runtimes that replace it are held to the boxes it
gave (tests/test_ssd_runtimes.py: same labels in the same order, boxes within 1 px), on machines
that no longer have it too.  Regenerate only with an OpenCV 4.x that still has the reader, e.g.

    .venv/bin/pip install --target /tmp/cv4 --no-deps 'opencv-python-headless==4.14.0.94'
    PYTHONPATH=/tmp/cv4 .venv/bin/python scripts/ssd_reference.py
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
OUT = ROOT / "tests" / "data" / "ssd_coco_reference.json"
# Backend options whose outputs are recorded: the full image at a low threshold (more boxes to
# compare), tiling (batched views) and letterboxing (padded input).
CONFIGS: dict[str, dict[str, object]] = {
    "threshold_0.1": {"score_threshold": 0.1},
    "tiles_2": {"tiles": 2},
    "letterbox": {"letterbox": True, "score_threshold": 0.2},
}


def main() -> int:
    import cv2
    from photos import CACHED_PHOTOS, SKIMAGE_PHOTOS, load_photo

    from vlm_ros.backends.ssd_coco import SsdCocoBackend

    detections: dict[str, list[list[object]]] = {}
    for config, options in CONFIGS.items():
        backend = SsdCocoBackend(runtime="opencv_tf", **options)
        for photo in [*SKIMAGE_PHOTOS, *CACHED_PHOTOS]:
            found = backend.detect(load_photo(photo), [])
            detections[f"{config}:{photo}"] = [
                [d.label, round(d.score, 5), *(round(v, 3) for v in d.bbox)] for d in found]
    OUT.parent.mkdir(parents=True, exist_ok=True)
    # One photo's detections a line: a diff shows which photo changed.
    rows = ",\n".join(f"  {json.dumps(key)}: {json.dumps(found)}"
                      for key, found in detections.items())
    OUT.write_text(f'{{"opencv": {json.dumps(cv2.__version__)}, "runtime": "opencv_tf",\n'
                   f' "configs": {json.dumps(CONFIGS)},\n "detections": {{\n{rows}\n}}}}\n')
    print(f"wrote {OUT}: {sum(map(len, detections.values()))} detections, OpenCV "
          f"{cv2.__version__}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
