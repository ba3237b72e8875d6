"""Command nouns -> detector labels.

Why: the parser produces English canonical nouns ("mug", "desk", "kid"), while a closed-set
detector only knows its own label names ("cup", "dining table", "person").  This module is the one
place that bridges the two, so the grounding code can (a) ask the backend for the right labels and
(b) answer ``not_found`` straight away when the model cannot see a noun at all ("plate" for COCO).

Everything here is data: a new word is one entry in ``NOUN_LABELS``.  Open-vocabulary backends
(``vocabulary is None``) get the noun itself, because they understand free phrases better than our
synonym table does.
"""

from __future__ import annotations

from collections.abc import Iterable

# The 90-id label map of the TF Object Detection API COCO models (SSD-MobileNetV2 etc.).  Ids are
# what the network emits; the gaps (12, 26, 29, 30, 45, 66, 68, 69, 71, 83) are COCO-2014 classes
# that were dropped from the 80-class release but kept their numbers.
COCO_LABELS: dict[int, str] = {
    1: "person", 2: "bicycle", 3: "car", 4: "motorcycle", 5: "airplane", 6: "bus", 7: "train",
    8: "truck", 9: "boat", 10: "traffic light", 11: "fire hydrant", 13: "stop sign",
    14: "parking meter", 15: "bench", 16: "bird", 17: "cat", 18: "dog", 19: "horse", 20: "sheep",
    21: "cow", 22: "elephant", 23: "bear", 24: "zebra", 25: "giraffe", 27: "backpack",
    28: "umbrella", 31: "handbag", 32: "tie", 33: "suitcase", 34: "frisbee", 35: "skis",
    36: "snowboard", 37: "sports ball", 38: "kite", 39: "baseball bat", 40: "baseball glove",
    41: "skateboard", 42: "surfboard", 43: "tennis racket", 44: "bottle", 46: "wine glass",
    47: "cup", 48: "fork", 49: "knife", 50: "spoon", 51: "bowl", 52: "banana", 53: "apple",
    54: "sandwich", 55: "orange", 56: "broccoli", 57: "carrot", 58: "hot dog", 59: "pizza",
    60: "donut", 61: "cake", 62: "chair", 63: "couch", 64: "potted plant", 65: "bed",
    67: "dining table", 70: "toilet", 72: "tv", 73: "laptop", 74: "mouse", 75: "remote",
    76: "keyboard", 77: "cell phone", 78: "microwave", 79: "oven", 80: "toaster", 81: "sink",
    82: "refrigerator", 84: "book", 85: "clock", 86: "vase", 87: "scissors", 88: "teddy bear",
    89: "hair drier", 90: "toothbrush",
}

COCO_ANIMALS: frozenset[str] = frozenset(
    {"bird", "cat", "dog", "horse", "sheep", "cow", "elephant", "bear", "zebra", "giraffe"}
)
COCO_VEHICLES: frozenset[str] = frozenset(
    {"bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat"}
)
COCO_FOOD: frozenset[str] = frozenset(
    {"banana", "apple", "sandwich", "orange", "broccoli", "carrot", "hot dog", "pizza", "donut",
     "cake"}
)

# Command noun (singular, lower case) -> the detector labels that may show it.  Every detector label
# also maps to itself (added below), so only words that differ from a label need an entry.  SSD
# confuses some neighbouring classes on real photos (a pickup is "car" or "truck", a mug is "cup"),
# so a noun may map to several labels; attribute reasoning then picks among the boxes.
NOUN_LABELS: dict[str, frozenset[str]] = {
    # people
    **dict.fromkeys(
        ("person", "people", "man", "woman", "kid", "child", "boy", "girl", "human", "guy",
         "lady", "gentleman", "someone", "somebody", "pedestrian", "player", "baby", "adult"),
        frozenset({"person"}),
    ),
    # animals
    "animal": COCO_ANIMALS,
    "pet": frozenset({"cat", "dog"}),
    "puppy": frozenset({"dog"}),
    "doggy": frozenset({"dog"}),
    "kitten": frozenset({"cat"}),
    "kitty": frozenset({"cat"}),
    "pony": frozenset({"horse"}),
    "lamb": frozenset({"sheep"}),
    "cattle": frozenset({"cow"}),
    "bull": frozenset({"cow"}),
    "calf": frozenset({"cow"}),
    # vehicles
    "vehicle": frozenset({"car", "truck", "bus", "motorcycle"}),
    "car": frozenset({"car", "truck"}),
    "truck": frozenset({"truck", "car"}),
    "pickup": frozenset({"truck", "car"}),
    "van": frozenset({"car", "truck"}),
    "lorry": frozenset({"truck"}),
    "automobile": frozenset({"car"}),
    "taxi": frozenset({"car"}),
    "bike": frozenset({"bicycle"}),
    "cycle": frozenset({"bicycle"}),
    "motorbike": frozenset({"motorcycle"}),
    "scooter": frozenset({"motorcycle"}),
    "plane": frozenset({"airplane"}),
    "aeroplane": frozenset({"airplane"}),
    "aircraft": frozenset({"airplane"}),
    "jet": frozenset({"airplane"}),
    "ship": frozenset({"boat"}),
    "coach": frozenset({"bus"}),
    # tableware
    "mug": frozenset({"cup"}),
    "teacup": frozenset({"cup"}),
    "glass": frozenset({"cup", "wine glass"}),
    "tumbler": frozenset({"cup"}),
    "wineglass": frozenset({"wine glass"}),
    "dish": frozenset({"bowl"}),
    "flask": frozenset({"bottle"}),
    "jar": frozenset({"bottle", "vase"}),
    "cutlery": frozenset({"fork", "knife", "spoon"}),
    "utensil": frozenset({"fork", "knife", "spoon"}),
    "silverware": frozenset({"fork", "knife", "spoon"}),
    # food
    "food": COCO_FOOD,
    "fruit": frozenset({"banana", "apple", "orange"}),
    "vegetable": frozenset({"broccoli", "carrot"}),
    "doughnut": frozenset({"donut"}),
    "hotdog": frozenset({"hot dog"}),
    # furniture
    "table": frozenset({"dining table"}),
    "desk": frozenset({"dining table"}),
    "sofa": frozenset({"couch"}),
    "settee": frozenset({"couch"}),
    "seat": frozenset({"chair", "couch", "bench"}),
    "stool": frozenset({"chair"}),
    "armchair": frozenset({"chair"}),
    "furniture": frozenset({"chair", "couch", "bed", "dining table", "bench"}),
    "plant": frozenset({"potted plant"}),
    "houseplant": frozenset({"potted plant"}),
    "flower": frozenset({"potted plant", "vase"}),
    "pot": frozenset({"potted plant", "vase"}),
    # electronics and appliances
    "tv": frozenset({"tv"}),
    "television": frozenset({"tv"}),
    "monitor": frozenset({"tv", "laptop"}),
    "screen": frozenset({"tv", "laptop"}),
    "display": frozenset({"tv", "laptop"}),
    "computer": frozenset({"laptop", "tv", "keyboard"}),
    "notebook": frozenset({"laptop", "book"}),
    "phone": frozenset({"cell phone"}),
    "cellphone": frozenset({"cell phone"}),
    "smartphone": frozenset({"cell phone"}),
    "mobile": frozenset({"cell phone"}),
    "telephone": frozenset({"cell phone"}),
    "remote control": frozenset({"remote"}),
    "controller": frozenset({"remote"}),
    "fridge": frozenset({"refrigerator"}),
    "stove": frozenset({"oven"}),
    "hair dryer": frozenset({"hair drier"}),
    "hairdryer": frozenset({"hair drier"}),
    "dryer": frozenset({"hair drier"}),
    # bags and other small things
    "bag": frozenset({"backpack", "handbag", "suitcase"}),
    "rucksack": frozenset({"backpack"}),
    "schoolbag": frozenset({"backpack"}),
    "purse": frozenset({"handbag"}),
    "luggage": frozenset({"suitcase"}),
    "necktie": frozenset({"tie"}),
    "ball": frozenset({"sports ball"}),
    "football": frozenset({"sports ball"}),
    "soccer ball": frozenset({"sports ball"}),
    "basketball": frozenset({"sports ball"}),
    "racket": frozenset({"tennis racket"}),
    "racquet": frozenset({"tennis racket"}),
    "bat": frozenset({"baseball bat"}),
    "glove": frozenset({"baseball glove"}),
    "ski": frozenset({"skis"}),
    "teddy": frozenset({"teddy bear"}),
    "stuffed animal": frozenset({"teddy bear"}),
    "toy": frozenset({"teddy bear", "sports ball", "frisbee", "kite"}),
    "doll": frozenset({"teddy bear"}),
    "hydrant": frozenset({"fire hydrant"}),
    "traffic signal": frozenset({"traffic light"}),
    "scissor": frozenset({"scissors"}),
    "clippers": frozenset({"scissors"}),
    "watch": frozenset({"clock"}),
}

# Nouns that name no class at all ("grab the red thing"): no label restriction.
GENERIC_NOUNS: frozenset[str] = frozenset(
    {"object", "thing", "item", "stuff", "something", "one", "it", "this", "that"}
)

# Plurals that the suffix rules below would get wrong.
IRREGULAR_PLURALS: dict[str, str] = {
    "people": "person", "persons": "person", "men": "man", "women": "woman",
    "children": "child", "kids": "kid", "mice": "mouse", "knives": "knife", "geese": "goose",
    "feet": "foot", "teeth": "tooth", "oxen": "cattle", "cacti": "cactus", "leaves": "leaf",
    "shelves": "shelf", "calves": "calf", "wolves": "wolf",
}

# Suffix rules (plural ending, singular ending), tried in order; a candidate is only taken when it
# is a known noun, so "bus" never becomes "bu" and "glasses" becomes "glass" (not "glasse").
_PLURAL_SUFFIXES: tuple[tuple[str, str], ...] = (
    ("ies", "y"), ("ves", "f"), ("ves", "fe"), ("ches", "ch"), ("shes", "sh"), ("sses", "ss"),
    ("xes", "x"), ("uses", "us"), ("oes", "o"), ("es", "e"), ("s", ""),
)


def _known_nouns(vocabulary: Iterable[str] | None) -> frozenset[str]:
    return frozenset(NOUN_LABELS) | frozenset(COCO_LABELS.values()) | GENERIC_NOUNS | frozenset(
        vocabulary or ()
    )


def normalize_noun(noun: str, vocabulary: Iterable[str] | None = None) -> str:
    """Lower-case, collapse spaces, and singularise ``noun`` when the singular is a known word.

    Known words are the synonym table, the COCO labels and ``vocabulary``; an unknown plural is
    only lower-cased, because guessing ("glasses" -> "glasse") does more harm than good.
    """
    text = " ".join(noun.lower().replace("_", " ").replace("-", " ").split())
    known = _known_nouns(vocabulary)
    if text in known:
        return text
    head, _, last = text.rpartition(" ")
    prefix = f"{head} " if head else ""
    if last in IRREGULAR_PLURALS:
        return prefix + IRREGULAR_PLURALS[last]
    for plural, singular in _PLURAL_SUFFIXES:
        if last.endswith(plural) and len(last) > len(plural):
            candidate = prefix + last[: -len(plural)] + singular
            if candidate in known or candidate.rpartition(" ")[2] in known:
                return candidate
    return text


def _labels_of_known_noun(noun: str) -> frozenset[str] | None:
    """Labels for a normalised noun, or None when the table does not know it."""
    if noun in NOUN_LABELS:
        return NOUN_LABELS[noun]
    if noun in COCO_LABELS.values():
        return frozenset({noun})
    return None


def labels_for_noun(noun: str | None, vocabulary: frozenset[str] | None) -> set[str] | None:
    """Detector labels that may show ``noun``.

    * ``None`` when there is no class restriction: no noun, or a generic noun ("thing").
    * Closed vocabulary: the matching labels that the vocabulary has; an empty set means the model
      cannot see this noun at all, which the core reports as ``not_found``.
    * Open vocabulary (``vocabulary is None``): ``{noun}`` itself (normalised), since those models
      read the phrase directly.

    A compound the table does not know ("coffee mug") falls back to its head word ("mug").
    """
    if noun is None or not noun.strip():
        return None
    normalized = normalize_noun(noun, vocabulary)
    if normalized in GENERIC_NOUNS:
        return None
    if vocabulary is None:
        return {normalized}
    labels = _labels_of_known_noun(normalized)
    if labels is None and " " in normalized:
        labels = _labels_of_known_noun(normalized.rpartition(" ")[2])
    found = set(labels or ()) & vocabulary
    if normalized in vocabulary:  # a custom closed-set detector that uses the word itself
        found.add(normalized)
    return found


def query_phrases(noun: str | None, vocabulary: frozenset[str] | None) -> list[str]:
    """What to pass as ``queries`` to ``Backend.detect`` for this noun.

    Closed vocabulary: the sorted matching labels (``[]`` for no restriction).  Open vocabulary:
    the noun phrase itself.  When the closed vocabulary cannot see the noun this is also ``[]``;
    callers must check ``labels_for_noun`` first and answer ``not_found`` instead of detecting.
    """
    labels = labels_for_noun(noun, vocabulary)
    return sorted(labels) if labels else []


__all__ = [
    "COCO_LABELS",
    "COCO_ANIMALS",
    "COCO_VEHICLES",
    "COCO_FOOD",
    "NOUN_LABELS",
    "GENERIC_NOUNS",
    "normalize_noun",
    "labels_for_noun",
    "query_phrases",
]
