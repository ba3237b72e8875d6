"""The parameter table and its validation, without rclpy: ranges, read-only, cross-field rules."""

from __future__ import annotations

import math

import pytest

from vlm_ros.core.types import ACTIONS
from vlm_ros.ros.params import PARAMETER_SPECS, PARAMETERS, NodeSettings, range_text

DEFAULTS = NodeSettings()


def _refused(changes: dict) -> str:
    with pytest.raises(ValueError) as refused:
        DEFAULTS.changed(changes)
    return str(refused.value)


def test_the_defaults_pass_every_rule() -> None:
    assert DEFAULTS.problems() == []
    assert DEFAULTS.check() is DEFAULTS


def test_every_default_lies_in_its_range() -> None:
    for name, spec in PARAMETER_SPECS.items():
        if spec.range is not None:
            assert spec.range[0] <= spec.default <= spec.range[1], name


def test_the_table_and_the_declared_parameters_agree() -> None:
    assert set(PARAMETER_SPECS) == set(PARAMETERS)
    for name, spec in PARAMETER_SPECS.items():
        assert PARAMETERS[name] == (spec.default, spec.description)


def test_structural_parameters_are_read_only_and_tunables_are_live() -> None:
    read_only = {name for name, spec in PARAMETER_SPECS.items() if spec.read_only}
    assert {"backend", "model", "device", "dtype", "backend_options", "parser",
            "parser_options", "use_compressed", "use_depth", "image_reliability", "base_frame",
            "camera_frame", "use_tf", "autostart"} <= read_only
    assert not read_only & {"score_threshold", "confirm_before_motion", "workspace_min",
                            "model_timeout_s", "standoff_distance", "follow_rate_hz"}


def test_a_live_change_gives_new_settings_and_leaves_the_old_ones() -> None:
    changed = DEFAULTS.changed({"score_threshold": 0.99, "confirm_before_motion": True,
                                "workspace_max": [2, 2, 2]})
    assert changed.score_threshold == 0.99 and changed.confirm_before_motion
    assert changed.workspace_max == (2.0, 2.0, 2.0)
    assert changed.pipeline_config().grounding.min_score == 0.99
    assert changed.session_config().confirm_before_motion
    assert DEFAULTS.score_threshold == -1.0  # frozen: the running settings are untouched


def test_score_threshold_unset_leaves_the_floor_to_the_backend() -> None:
    """-1 (the default) = the backend's own default: no score_threshold for its constructor and
    no floor of the core's own; a value in [0, 1] goes to both."""
    assert DEFAULTS.score_threshold == -1.0 and DEFAULTS.user_score_threshold is None
    assert "score_threshold" not in DEFAULTS.backend_kwargs()
    assert DEFAULTS.pipeline_config().grounding.min_score is None
    assert PARAMETER_SPECS["score_threshold"].range == (-1.0, 1.0)
    user = DEFAULTS.changed({"score_threshold": 0.3})
    assert user.user_score_threshold == 0.3
    assert user.backend_kwargs()["score_threshold"] == 0.3
    assert user.pipeline_config().grounding.min_score == 0.3
    zero = DEFAULTS.changed({"score_threshold": 0})  # 0 is a threshold, not "unset"
    assert zero.backend_kwargs()["score_threshold"] == 0.0
    back = user.changed({"score_threshold": -1})
    assert back.user_score_threshold is None and "score_threshold" not in back.backend_kwargs()


@pytest.mark.parametrize(("changes", "reason"), [
    ({"score_threshold": 7.5}, "score_threshold must be in [0, 1] or -1 (the backend's default), "
                               "got 7.5"),
    ({"score_threshold": -0.1}, "score_threshold must be in [0, 1] or -1"),
    ({"score_threshold": -1.5}, "score_threshold must be in [0, 1] or -1"),
    ({"score_threshold": math.nan}, "score_threshold must be in [0, 1]"),
    ({"model_timeout_s": -1.0}, "model_timeout_s must be in [0, inf)"),
    ({"max_command_length": 0}, "max_command_length must be in [1, 1000000]"),
    ({"depth_scale": 0.0}, "depth_scale must be greater than 0"),
    ({"max_grasp_width_m": 0.0}, "max_grasp_width_m must be greater than 0"),
])
def test_out_of_range_values_are_refused_naming_the_range(changes: dict, reason: str) -> None:
    assert reason in _refused(changes)


@pytest.mark.parametrize("name", ["backend", "model", "parser", "use_depth", "base_frame",
                                  "autostart"])
def test_read_only_parameters_are_refused_while_running(name: str) -> None:
    value = PARAMETER_SPECS[name].default
    assert "read-only" in _refused({name: value})
    # ... but the start-up path may set them
    assert getattr(DEFAULTS.changed({name: value}, structural=True), name) == value


@pytest.mark.parametrize(("changes", "reason"), [
    ({"score_threshold": "high"}, "score_threshold must be a number"),
    ({"confirm_before_motion": 1}, "confirm_before_motion must be true or false"),
    ({"max_command_length": 10.5}, "max_command_length must be an integer"),
    ({"max_command_length": True}, "max_command_length must be an integer"),
    ({"workspace_min": "0 0 0"}, "workspace_min must be a list"),
    ({"allowed_actions": [1, 2]}, "allowed_actions must be a list of strings"),
    ({"no_such_parameter": 1.0}, "unknown parameter no_such_parameter"),
])
def test_wrong_types_and_names_are_refused(changes: dict, reason: str) -> None:
    assert reason in _refused(changes)


@pytest.mark.parametrize(("changes", "reason"), [
    ({"workspace_min": [0.0, 0.0, 2.0]}, "must be below workspace_max"),
    ({"workspace_max": [1.0, -1.0, 1.0]}, "must be below workspace_max"),
    ({"workspace_min": [0.0, 0.0]}, "workspace_min needs 3 numbers, got 2"),
    ({"workspace_max": [1.0, math.inf, 1.0]}, "workspace_max must be finite"),
    ({"keepout_zones": [0.0, 0.0, 1.0]}, "keepout_zones needs 4 numbers per zone"),
    ({"keepout_zones": [1.0, 0.0, 0.5, 1.0]}, "x_min < x_max and y_min < y_max"),
    ({"allowed_actions": ["pick", "dance"]}, "allowed_actions: unknown action(s) dance"),
    ({"confirm_actions": ["jump"]}, "confirm_actions: unknown action(s) jump"),
    ({"min_depth_m": 12.0}, "min_depth_m (12.0) must be below max_depth_m (10.0)"),
])
def test_cross_field_rules(changes: dict, reason: str) -> None:
    assert reason in _refused(changes)


def test_valid_vectors_and_subsets_are_accepted() -> None:
    changed = DEFAULTS.changed({"keepout_zones": [1.0, 1.0, 2.0, 2.0, -3.0, -3.0, -2.0, -2.0],
                                "allowed_actions": ["look", "find"],
                                "confirm_actions": list(ACTIONS)})
    assert len(changed.safety_config().keepout_zones) == 2
    assert changed.safety_config().allowed_actions == frozenset({"look", "find"})
    assert DEFAULTS.changed({"keepout_zones": [0.0]}).safety_config().keepout_zones == []


def test_every_rule_a_start_up_breaks_is_named_at_once() -> None:
    bad = NodeSettings.from_parameters({"score_threshold": 2.0, "image_reliability": "fast",
                                        "backend_options": "[1, 2]"})
    found = "; ".join(bad.problems())
    assert "score_threshold must be in [0, 1]" in found
    assert "image_reliability must be best_effort or reliable" in found
    assert "backend_options must be a YAML/JSON mapping" in found
    with pytest.raises(ValueError, match="image_reliability"):
        bad.check()


def test_range_text() -> None:
    assert range_text((0.0, 1.0)) == "[0, 1]"
    assert range_text((0.0, math.inf)) == "[0, inf)"
    assert range_text((1, 1_000_000)) == "[1, 1000000]"
    assert range_text((0.05, 2.5)) == "[0.05, 2.5]"
