"""How to grasp, in words: "from above" is used; "by the handle", "from the side", "with the suction
cup" are named and refused.

Grasps come from the object's measured shape (vlm_ros/core/grasp.py), so a command can only ask
for what that geometry can honour: an approach from above (every parallel-jaw candidate but a
tilted top's is one; the rest are dropped).  A named part ("by the handle", "at its rim"), another
direction ("from the side") or a tool ("with the suction cup") would be silently ignored - or,
worse, read as a place ("the cup by the handle" = next to a handle) - so each is refused with the
phrase named.  Only pick steps are concerned: "go to the cup by the door" keeps its relation, and
with an ordinal, "from the right / left / top" is where the count starts ("the second cup from
the top"), not a grasp wish.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from vlm_ros.core.types import Language

_PARTS = (r"handles?|rims?|necks?|tops?|sides?|edges?|caps?|lids?|bases?|bottoms?|middle|"
          r"body|corners?|stems?|tips?|ends?|spout")
_EN_FROM_ABOVE = re.compile(r"\s+(?:from (?:the )?(?:top|above)|from overhead|top[- ]down)\b")
# "at the top" / "on the edge" stay places ("the cup at the top", "on the edge of the table");
# a part is "by" one, "at its" one, or one that is only ever a part ("at the handle").
_ONLY_PARTS = r"handles?|rims?|necks?|caps?|lids?|stems?|spout"
_EN_REFUSED = (
    re.compile(rf"\s+by (?:the |its |their |his |her )?(?:{_PARTS})\b"),
    re.compile(rf"\s+(?:at|on) (?:its |their )(?:{_PARTS})\b"),
    re.compile(rf"\s+(?:at|on) the (?:{_ONLY_PARTS})\b"),
    re.compile(r"\s+from (?:the |its )?(?:sides?|front|back|behind|below|bottom|underneath|"
               r"left|right)\b"),
    re.compile(r"\s+(?:with|using) (?:the |a |an |your |its |my )?(?:suction(?: cup)?|"
               r"vacuum(?: gripper)?|(?:two |both |your )?fingers?|gripper|hand|claw|pincers?)"
               r"\b"),
    re.compile(r"\s+(?:sideways|from the side)\b"),
)
_ZH_FROM_ABOVE = re.compile(r"从(?:正上方|上方|上面|顶部|顶上)")
_ZH_REFUSED = (
    re.compile(r"从(?:侧面|旁边|下面|下方|前面|后面|左边|右边)"),
    re.compile(r"用(?:真空吸盘|吸盘|两个手指|手指|夹爪|手)"),
    re.compile(r"的(?:把手|杯把|手柄|边缘|边|瓶口|瓶颈|瓶盖|盖子|底部|顶部)"),
)


@dataclass(frozen=True)
class GraspWords:
    """The clause without the grasp phrase, the approach asked for ("top") and, for a phrase
    that cannot be honoured, the phrase itself."""

    clause: str
    approach: str | None = None
    unsupported: str | None = None


# "the second cup from the right / from the top": an ordinal counts from there - no grasp wish.
_ORDINAL = re.compile(r"\b(?:first|second|third|fourth|fifth|sixth|last|next to last|"
                      r"\d+(?:st|nd|rd|th))\b|第")


def grasp_words(clause: str, language: Language) -> GraspWords | None:
    """The grasp phrase of ``clause``, or None when it has none."""
    if _ORDINAL.search(clause):
        return None
    refused = _ZH_REFUSED if language == "zh" else _EN_REFUSED
    for pattern in refused:
        match = pattern.search(clause)
        if match:
            rest = (clause[:match.start()] + clause[match.end():]).strip()
            return GraspWords(rest, unsupported=match.group(0).strip())
    above = (_ZH_FROM_ABOVE if language == "zh" else _EN_FROM_ABOVE).search(clause)
    if above:
        rest = (clause[:above.start()] + clause[above.end():]).strip()
        return GraspWords(" ".join(rest.split()) if language == "en" else rest, approach="top")
    return None


def refusal(phrase: str) -> str:
    """The answer to a grasp phrase that cannot be honoured, naming it."""
    return (f"I can't choose how to grasp ('{phrase}'): grasps come from the object's measured "
            "shape (grasp_strategy, gripper_type); 'from above' is the only grasp wish I take - "
            "say the command without it")
