"""The MCP server's approval policy: the YAML format (every error names its line) and decide()."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from vlm_ros.agent.policy import (
    MOTION_ACTIONS,
    STRICT_POLICY,
    Bounds,
    PlannedMotion,
    Policy,
    PolicyError,
    Verdict,
    decide,
    describe_policy,
    load_policy,
    parse_policy,
)

CONFIG = Path(__file__).resolve().parents[1] / "config"
SOURCE = "agent_policy.yaml"

# Line numbers below are the YAML's, counted from the first line after the opening quotes.
DEMO = """\
version: 1
actions:
  pick: allow
  place: allow
  navigate: approve
  look: allow
  find: allow
  follow: deny
approve_when:
  near_person_m: 1.0
approval:
  timeout_s: 30
bounds:
  frame: base_link
  workspace:
    min: [0.2, -0.6, 0.0]
    max: [1.0, 0.6, 1.5]
  max_distance_m: 1.5
  max_goals_per_minute: 3
  margin_m: 0.1
"""


def _policy(text: str = DEMO) -> Policy:
    return parse_policy(text, source=SOURCE)


def _error(text: str) -> str:
    with pytest.raises(PolicyError) as caught:
        parse_policy(textwrap.dedent(text), source=SOURCE)
    return str(caught.value)


def _decide(policy: Policy, action: str = "pick", point: tuple[float, float, float] | None
            = (0.5, 0.0, 0.75), *, frame: str = "base_link", persons=(), recent=(),
            now: float = 1000.0, label: str = "red mug"):
    motion = PlannedMotion(action=action, label=label, point=point, frame=frame)
    return decide(policy, motion, persons=persons, recent_goals=recent, now=now)


# --- The shipped files ------------------------------------------------------------------------

def test_demo_policy_file_loads_with_the_demo_settings() -> None:
    policy = load_policy(CONFIG / "agent_policy.yaml")
    assert policy.source == "agent_policy.yaml"
    assert dict(policy.actions) == {"pick": Verdict.ALLOW, "place": Verdict.ALLOW,
                                    "navigate": Verdict.APPROVE, "look": Verdict.ALLOW,
                                    "find": Verdict.ALLOW, "follow": Verdict.DENY}
    assert policy.bounds == Bounds(frame="base_link", workspace_min=(0.2, -0.7, 0.0),
                                   workspace_max=(1.1, 0.7, 1.5), max_distance_m=1.6,
                                   max_goals_per_minute=12, margin_m=0.1)
    assert (policy.near_person_m, policy.approval_timeout_s) == (1.0, 60.0)


def test_demo_policy_allows_every_object_on_the_demo_table() -> None:
    policy = load_policy(CONFIG / "agent_policy.yaml")
    for x in (0.4, 0.9):
        for y in (-0.5, 0.5):
            for action in ("pick", "place"):
                assert _decide(policy, action, (x, y, 0.75)).verdict is Verdict.ALLOW


def test_strict_file_equals_the_built_in_strict_policy() -> None:
    policy = load_policy(CONFIG / "agent_policy_strict.yaml")
    assert dict(policy.actions) == dict(STRICT_POLICY.actions)
    assert set(STRICT_POLICY.actions) == set(MOTION_ACTIONS)
    assert all(v is Verdict.APPROVE for v in STRICT_POLICY.actions.values())
    assert policy.bounds == STRICT_POLICY.bounds == Bounds()
    assert policy.near_person_m is None and STRICT_POLICY.near_person_m is None
    assert policy.approval_timeout_s == STRICT_POLICY.approval_timeout_s
    assert STRICT_POLICY.source == "<built-in strict policy>"


def test_load_policy_names_a_missing_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    with pytest.raises(PolicyError, match="nope.yaml"):
        load_policy(missing)


def test_parse_records_the_line_of_every_key() -> None:
    lines = _policy().lines
    assert lines["actions.pick"] == 3 and lines["actions.follow"] == 8
    assert lines["approve_when.near_person_m"] == 10 and lines["bounds.workspace"] == 15
    assert lines["bounds.max_goals_per_minute"] == 19


def test_missing_actions_are_denied() -> None:
    policy = _policy("version: 1\nactions:\n  pick: allow\n")
    assert policy.actions["pick"] is Verdict.ALLOW
    assert all(policy.actions[a] is Verdict.DENY for a in MOTION_ACTIONS if a != "pick")


# --- Errors name the line ---------------------------------------------------------------------

@pytest.mark.parametrize(("text", "line", "words"), [
    ("version: 1\nactions:\n  pick: allow\n  grasp: allow\n", 4,
     ["unknown action 'grasp'", "known: pick, place, navigate, look, find, follow"]),
    ("version: 1\nactions:\n  pick: yes\n", 3, ["boolean", "allow, approve or deny"]),
    ("version: 1\nactions:\n  pick: maybe\n", 3, ["allow, approve or deny", "'maybe'"]),
    ("version: 1\nactions: {}\nspeed: 3\n", 3, ["unknown key 'speed'"]),
    ("version: 1\nbounds:\n  frame: map\n  box: 1\n", 4, ["unknown key 'box' in bounds"]),
    ("version: 1\nbounds:\n  workspace:\n    min: [0, 0, 0]\n    mid: [1, 1, 1]\n", 5,
     ["unknown key 'mid'"]),
    ("version: 2\nactions: {}\n", 1, ["version must be 1"]),
    ("\nactions:\n  pick: allow\n", 2, ["missing 'version: 1'"]),
    ("version: 1\nactions:\n  pick: allow\n  pick: deny\n", 4, ["duplicate key 'pick'"]),
    ("version: 1\napprove_when:\n  near_person_m: '1.0'\n", 3, ["must be a number", "string"]),
    ("version: 1\napprove_when:\n  near_person_m: true\n", 3, ["must be a number", "boolean"]),
    ("version: 1\napprove_when:\n  near_person_m: 0\n", 3, ["near_person_m must be > 0"]),
    ("version: 1\napprove_when:\n  near_person_m: .nan\n", 3, ["finite"]),
    ("version: 1\napproval:\n  timeout_s: .inf\n", 3, ["finite"]),
    ("version: 1\napproval:\n  timeout_s: 7200\n", 3, ["<= 3600"]),
    ("version: 1\nbounds:\n  max_goals_per_minute: 2.5\n", 3, ["whole number"]),
    ("version: 1\nbounds:\n  max_goals_per_minute: 0\n", 3, [">= 1"]),
    ("version: 1\nbounds:\n  margin_m: -0.1\n", 3, ["margin_m must be >= 0"]),
    ("version: 1\nbounds:\n  frame: ''\n", 3, ["frame"]),
    ("version: 1\nbounds:\n  workspace:\n    min: [0, 0]\n    max: [1, 1, 1]\n", 4,
     ["3 numbers"]),
    ("version: 1\nbounds:\n  workspace:\n    min: [0, 0, 0]\n", 4, ["both min and max"]),
    ("version: 1\nactions:\n  pick: !custom allow\n", 3, ["allow, approve or deny"]),
    ("version: 1\nbounds:\n  margin_m: 0.2\n  max_distance_m: 0.15\n", 4,
     ["max_distance_m 0.15 is not more than margin_m 0.2"]),
    ("version: 1\nbounds:\n  workspace:\n    min: [0, 0, 0]\n    max: [1, 0.15, 1]\n", 4,
     ["only 0.15 m wide on y", "twice margin_m"]),
    ("version: 1\n---\nversion: 1\n", 2, ["YAML syntax error", "single document"]),
])
def test_bad_values_name_their_line(text: str, line: int, words: list[str]) -> None:
    message = _error(text)
    assert message.startswith(f"{SOURCE} line {line}: "), message
    for word in words:
        assert word in message, message


def test_workspace_min_not_below_max_names_the_axis() -> None:
    message = _error("""\
        version: 1
        bounds:
          workspace:
            min: [0.2, 0.5, 0.0]
            max: [1.0, 0.5, 1.5]
        """)
    assert message.startswith(f"{SOURCE} line 4: ")
    assert "min y 0.5 is not below max y 0.5" in message


def test_yaml_syntax_error_names_the_line() -> None:
    message = _error("version: 1\nactions:\n  pick: allow\n   place: [deny\n")
    assert message.startswith(f"{SOURCE} line 4: YAML syntax error"), message


@pytest.mark.parametrize("text", ["", "   \n# only a comment\n"])
def test_empty_policy_is_an_error(text: str) -> None:
    assert _error(text) == f"{SOURCE}: the policy is empty (it needs version: 1 and actions)"


def test_non_mapping_document_is_an_error() -> None:
    message = _error("- pick\n- place\n")
    assert message.startswith(f"{SOURCE} line 1: ") and "must be a mapping" in message


# --- decide() ---------------------------------------------------------------------------------

def test_allowed_pick_inside_every_bound() -> None:
    decision = _decide(_policy(), persons=[(3.0, 0.0, 0.0)])
    assert decision.verdict is Verdict.ALLOW and decision.reasons == ()
    assert decision.text == "allowed"


def test_denied_action_names_the_file_line() -> None:
    decision = _decide(_policy(), "follow", None)
    assert decision.verdict is Verdict.DENY
    assert decision.text == f"denied: follow is not allowed ({SOURCE} line 8)"


def test_unlisted_action_is_denied_with_the_actions_line() -> None:
    decision = _decide(_policy("version: 1\nactions:\n  pick: allow\n"), "find", None)
    assert decision.verdict is Verdict.DENY
    assert decision.reasons == (
        f"find is not allowed (not listed under actions; {SOURCE} line 2)",)


def test_unknown_action_is_denied() -> None:
    decision = _decide(_policy(), "dance")
    assert decision.verdict is Verdict.DENY and "unknown action 'dance'" in decision.text


def test_approve_action_asks_for_every_one() -> None:
    decision = _decide(_policy(), "navigate", (1.0, 0.0, 0.0))
    assert decision.verdict is Verdict.APPROVE
    assert decision.text == ("needs approval: the policy asks a person to approve every navigate "
                             f"({SOURCE} line 5)")


def test_strict_policy_approves_without_line_numbers() -> None:
    decision = _decide(STRICT_POLICY, "look", None, persons=None)
    assert decision.verdict is Verdict.APPROVE
    assert decision.reasons == ("the policy asks a person to approve every look "
                                "(<built-in strict policy>)",)


def test_workspace_margin_edge() -> None:
    policy = _policy()  # x 0.2 .. 1.0 with a 0.1 margin: 0.3 .. 0.9 passes
    assert _decide(policy, point=(0.3, 0.0, 0.75)).verdict is Verdict.ALLOW
    assert _decide(policy, point=(0.9, 0.5, 0.75)).verdict is Verdict.ALLOW
    inside_box_not_margin = _decide(policy, point=(0.95, 0.0, 0.75))
    assert inside_box_not_margin.verdict is Verdict.DENY
    assert inside_box_not_margin.text == (
        "denied: pick the red mug: x 0.95 m is outside the workspace (0.30 .. 0.90 m with the "
        f"0.10 m margin; {SOURCE} line 15)")


def test_workspace_names_every_axis_outside() -> None:
    decision = _decide(_policy(), "place", (0.5, -0.8, 1.45), label="")
    assert decision.verdict is Verdict.DENY and len(decision.reasons) == 2
    assert decision.reasons[0].startswith("place: y -0.80 m is outside")
    assert decision.reasons[1].startswith("place: z 1.45 m is outside")


def test_workspace_does_not_apply_to_navigate() -> None:
    decision = _decide(_policy(), "look", (1.2, 0.0, 2.5))  # above the box, within reach
    assert decision.verdict is Verdict.ALLOW


def test_max_distance_is_horizontal_and_has_the_margin() -> None:
    policy = _policy()  # max 1.5 - margin 0.1 = 1.4 m
    assert _decide(policy, "look", (1.4, 0.0, 9.0)).verdict is Verdict.ALLOW
    far = _decide(policy, "look", (1.2, 0.9, 0.0), label="door")
    assert far.verdict is Verdict.DENY
    assert far.reasons == (f"look the door: 1.50 m away, farther than 1.40 m (max_distance_m 1.5 "
                           f"less the 0.10 m margin; {SOURCE} line 18)",)


def test_frame_mismatch_is_denied_not_transformed() -> None:
    decision = _decide(_policy(), point=(0.5, 0.0, 0.75), frame="odom")
    assert decision.verdict is Verdict.DENY
    assert "frame 'odom'" in decision.text and "'base_link'" in decision.text


def test_no_point_with_bounds_is_denied() -> None:
    for point in (None, (float("nan"), 0.0, 0.75)):
        decision = _decide(_policy(), point=point)
        assert decision.verdict is Verdict.DENY
        assert "no 3D position to check against the bounds" in decision.text


def test_find_needs_no_point_even_with_bounds() -> None:
    assert _decide(_policy(), "find", None, persons=None).verdict is Verdict.ALLOW


def test_goal_rate_window_edge() -> None:
    policy = _policy()  # max 3 goals a minute
    now = 1000.0
    # A goal exactly 60 s old has left the window: two count, the third goal may start.
    assert _decide(policy, recent=[now - 60.0, now - 30.0, now - 10.0], now=now).verdict \
        is Verdict.ALLOW
    full = _decide(policy, recent=[now - 59.0, now - 30.0, now - 10.0, now - 100.0], now=now)
    assert full.verdict is Verdict.DENY
    assert full.text == (f"denied: goal rate: 3 goals in the last 60 s (max 3, {SOURCE} line 19); "
                         "the next is possible in 1.0 s")


def test_goal_rate_applies_to_find_too() -> None:
    # 4 goals, max 3: the next fits once 995 and 996 have left the window, at 1056.
    decision = _decide(_policy(), "find", None, recent=[995.0, 996.0, 997.0, 998.0])
    assert decision.verdict is Verdict.DENY
    assert "4 goals in the last 60 s (max 3" in decision.text and "in 56.0 s" in decision.text


def test_persons_unknown_needs_approval() -> None:
    decision = _decide(_policy(), persons=None)
    assert decision.verdict is Verdict.APPROVE
    assert decision.reasons == ("cannot tell whether a person is near the red mug "
                                "(the node could not look for people)",)


def test_person_far_allows_and_near_needs_approval() -> None:
    policy = _policy()
    assert _decide(policy, persons=[(0.5, 1.2, 0.75)]).verdict is Verdict.ALLOW
    near = _decide(policy, persons=[(3.0, 0.0, 0.0), (0.5, 0.62, 0.75)])
    assert near.verdict is Verdict.APPROVE
    assert near.text == (f"needs approval: pick near a person (0.62 m from it; near_person_m 1.0, "
                         f"{SOURCE} line 10)")


def test_person_check_is_3d_and_inclusive() -> None:
    policy = _policy()
    assert _decide(policy, persons=[(0.5, 0.0, 1.75)]).verdict is Verdict.APPROVE  # exactly 1.0
    assert _decide(policy, persons=[(0.5, 0.8, 1.5)]).verdict is Verdict.ALLOW  # 1.09 m in 3D


def test_person_check_skips_find() -> None:
    policy = _policy()
    assert _decide(policy, "find", None, persons=None).verdict is Verdict.ALLOW


def test_deny_dominates_approve_and_keeps_every_reason() -> None:
    decision = _decide(_policy(), point=(1.5, 0.0, 0.75), persons=[(1.5, 0.3, 0.75)])
    assert decision.verdict is Verdict.DENY
    assert len(decision.reasons) == 3  # x outside the box, beyond reach, then near a person
    assert "outside the workspace" in decision.reasons[0]
    assert "farther than" in decision.reasons[1]
    assert decision.reasons[2].startswith("pick near a person")
    assert decision.text.startswith("denied: ")


def test_denied_action_with_approval_reasons_is_still_denied() -> None:
    text = DEMO.replace("pick: allow", "pick: deny")
    decision = _decide(_policy(text), persons=None)
    assert decision.verdict is Verdict.DENY
    assert decision.reasons[0] == f"pick is not allowed ({SOURCE} line 3)"


def test_describe_policy_is_json_serialisable() -> None:
    summary = describe_policy(_policy())
    assert json.loads(json.dumps(summary)) == summary
    assert summary["actions"]["navigate"] == "approve"
    assert summary["bounds"]["workspace"] == {"min": [0.2, -0.6, 0.0], "max": [1.0, 0.6, 1.5]}
    assert (summary["near_person_m"], summary["approval_timeout_s"]) == (1.0, 30.0)
    assert summary["source"] == SOURCE
    strict = describe_policy(STRICT_POLICY)
    assert json.loads(json.dumps(strict))["bounds"]["workspace"] is None
