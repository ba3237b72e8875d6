"""What may be picked up, and what may have things put on or in it.

Judged with the command, not only where goals leave: the session refuses "pick up the person"
before any model runs, the grounding never chooses a person for "grab something", and an answer
for a dog says it will not grasp it whether or not depth, calibration or a goal exist.  The
checks, used by the session and the safety gate (:mod:`vlm_ros.core.safety`):

* **Category.**  People and animals are never grasped, and nothing is put on or in them.
  Vehicles, furniture and other large things (appliances, street fixtures, boards and skis) are
  too large for a gripper; they stay fine to drive to, follow, look at, find, and - furniture -
  to place things on.  The table covers the COCO labels of the default backend
  (:data:`vlm_ros.core.vocabulary.COCO_LABELS`) and common open-vocabulary nouns.  A label the
  table does not know is not refused by category: the extent check decides.
* **Destinations.**  Nothing is put on or in a person or an animal, nor on or in a small thing
  that cannot hold an object (a ball, a banana, a knife, a phone: :data:`CANNOT_HOLD`).
* **Configurable.**  ``never_grasp`` adds labels/nouns refused for a pick (as too large, or as
  the site requires); ``may_grasp`` takes labels/nouns out of the table (e.g. ``chair`` for a
  robot that moves chairs).  Both are safety parameters of the node.
* **Extent.**  With depth and intrinsics the pipeline records each located object's width
  (:func:`box_width_m`: the box's width back-projected at the object's depth) on
  ``Candidate.width_m``; the gate refuses a pick wider than ``max_grasp_width_m``.

Matching is on whole words: "teddy bear", "hot dog" and "toy car" are not animals or vehicles,
"dog bowl" is a bowl ("bowl" is its head word) and "office chair" is a chair.
"""

from __future__ import annotations

from vlm_ros.core.types import BBox, CameraIntrinsics
from vlm_ros.core.vocabulary import COCO_ANIMALS, COCO_VEHICLES, normalize_noun

PERSON, ANIMAL, VEHICLE, FURNITURE, LARGE = "person", "animal", "vehicle", "furniture", "large"

# Why each category is never picked up (said on ~/result).
WHY_NOT_GRASPED: dict[str, str] = {
    PERSON: "a person is never grasped",
    ANIMAL: "an animal is never grasped",
    VEHICLE: "a vehicle is too large to grasp",
    FURNITURE: "furniture is too large to grasp",
    LARGE: "it is too large to grasp",
}
# Destinations nothing is ever put on or in.
NEVER_A_DESTINATION: frozenset[str] = frozenset({PERSON, ANIMAL})
SMALL = "small"  # a destination category only: a thing that cannot hold an object
WHY_NOT_A_DESTINATION: dict[str, str] = {
    PERSON: "nothing is ever put on or in a person",
    ANIMAL: "nothing is ever put on or in an animal",
    SMALL: "it cannot hold an object",
}
# Small things nothing can be put on or in (COCO labels and common nouns).
CANNOT_HOLD: frozenset[str] = frozenset({
    "sports ball", "ball", "banana", "apple", "orange", "carrot", "broccoli", "hot dog", "donut",
    "sandwich", "knife", "fork", "spoon", "scissors", "toothbrush", "pen", "pencil", "cell phone",
    "phone", "remote", "mouse", "kite", "frisbee", "baseball bat", "tennis racket", "tie",
    "umbrella", "hair drier", "bottle", "wine glass", "candle", "key", "keys", "coin", "battery",
})

_PEOPLE = (
    "person", "people", "man", "woman", "kid", "child", "boy", "girl", "human", "guy", "lady",
    "gentleman", "someone", "somebody", "pedestrian", "player", "baby", "adult", "toddler", "infant",
    "teenager", "worker", "customer", "visitor", "passenger", "rider", "cyclist", "face", "hand",
    "arm", "leg", "foot", "finger",
)
# "mouse" and "bat" are left out on purpose: in COCO (and on a desk) they are a computer mouse and
# a baseball bat.  "fish" and "chicken" are food as often as animals.
_ANIMALS = (
    *sorted(COCO_ANIMALS), "animal", "pet", "puppy", "doggy", "kitten", "kitty", "pony", "lamb",
    "cattle", "bull", "calf", "goat", "pig", "rabbit", "bunny", "hamster", "guinea pig", "parrot",
    "duck", "goose", "hen", "rooster", "pigeon", "squirrel", "deer", "fox", "wolf", "lion",
    "tiger", "monkey", "donkey", "camel", "snake", "lizard", "turtle", "tortoise", "frog",
)
_VEHICLES = (
    *sorted(COCO_VEHICLES), "vehicle", "pickup", "van", "lorry", "automobile", "taxi", "bike",
    "motorbike", "scooter", "plane", "aeroplane", "aircraft", "jet", "helicopter", "ship", "coach",
    "tram", "tractor", "forklift", "trailer", "wheelchair", "stroller", "pram", "cart", "trolley",
)
_FURNITURE = (
    "chair", "couch", "bed", "dining table", "toilet", "bench", "table", "desk", "sofa", "settee",
    "seat", "stool", "armchair", "furniture", "shelf", "bookshelf", "bookcase", "cabinet",
    "cupboard", "wardrobe", "dresser", "countertop", "nightstand",
    "sideboard", "bathtub", "bath", "shower", "crib", "mattress", "door", "wall", "floor",
    "window", "stairs", "staircase",
)
_LARGE = (
    "traffic light", "fire hydrant", "stop sign", "parking meter", "refrigerator", "fridge",
    "oven", "stove", "sink", "tv", "television", "microwave", "dishwasher", "washing machine",
    "piano", "surfboard", "skis", "ski", "snowboard", "hydrant", "traffic signal",
    "street light", "lamppost", "pole", "tree", "building", "house",
)

# Label / noun -> category.
CATEGORIES: dict[str, str] = {
    **dict.fromkeys(_LARGE, LARGE),
    **dict.fromkeys(_FURNITURE, FURNITURE),
    **dict.fromkeys(_VEHICLES, VEHICLE),
    **dict.fromkeys(_ANIMALS, ANIMAL),
    **dict.fromkeys(_PEOPLE, PERSON),
}
# Compounds whose head word is in the table but that are small, graspable things.
GRASPABLE_COMPOUNDS: frozenset[str] = frozenset(
    {"teddy bear", "hot dog", "stuffed animal", "hotdog", "dog toy", "cat toy", "ski pole"}
)
# Words that name the category only on their own: as the last word of a compound they usually
# name something else ("record player", "robot arm", "table leg", "clock face", "shopping cart").
_WHOLE_WORD_ONLY: frozenset[str] = frozenset(
    {"player", "face", "hand", "arm", "leg", "foot", "finger", "seat", "pole", "cart", "house",
     "tree", "window", "door", "wall", "floor", "bath", "pet"}
)
# A first word that makes any noun a small object: "toy car", "stuffed dog", "model train".
_TOY_WORDS: frozenset[str] = frozenset(
    {"toy", "stuffed", "plush", "model", "miniature", "mini", "teddy", "rubber", "cuddly", "lego"}
)


def category_of(label: str | None, never_grasp: frozenset[str] = frozenset(),
                may_grasp: frozenset[str] = frozenset()) -> str | None:
    """The category of a detector label or command noun (``None``: not refused by category);
    ``never_grasp`` / ``may_grasp``: labels or nouns added to / taken out of the table."""
    if not label or not label.strip():
        return None
    text = normalize_noun(label)
    if text in may_grasp or normalize_noun(text.split()[-1]) in may_grasp:
        return None
    if text in never_grasp:
        return LARGE
    if text in GRASPABLE_COMPOUNDS:
        return None
    if text in CATEGORIES:
        return CATEGORIES[text]
    words = text.split()
    if len(words) < 2 or words[0] in _TOY_WORDS:
        return None
    head = words[-1]
    return None if head in _WHOLE_WORD_ONLY else CATEGORIES.get(head)


def destination_category(label: str | None) -> str | None:
    """Why nothing may be put on or in ``label`` (a category of :data:`WHY_NOT_A_DESTINATION`),
    or None when it may hold an object."""
    category = category_of(label)
    if category in NEVER_A_DESTINATION:
        return category
    if label and normalize_noun(label) in CANNOT_HOLD:
        return SMALL
    return None


def box_width_m(bbox: BBox, depth_m: float, intrinsics: CameraIntrinsics | None,
                image_width: int, image_height: int) -> float | None:
    """Width (m) of ``bbox`` (pixels of an ``image_width`` x ``image_height`` image) back-projected
    at ``depth_m``: the object's extent across the view, assuming it faces the camera.

    The intrinsics are scaled to the image first when the camera info was for another
    resolution.  None when the depth or the intrinsics are not usable.
    """
    if intrinsics is None or not intrinsics.is_valid() or not depth_m > 0.0:
        return None
    K = intrinsics
    if (K.width, K.height) != (image_width, image_height):
        K = K.scaled_to(image_width, image_height)
    return max(0.0, float(bbox[2]) - float(bbox[0])) * float(depth_m) / K.fx
