"""The custom ROS interfaces (msg/, srv/) are valid and mirror the one result schema.

Every .msg/.srv is run through the same front end `rosidl_generate_interfaces()` uses on a ROS
machine (rosidl_adapter: .msg/.srv -> .idl, then rosidl_parser), so a syntax error shows up here,
not at colcon time.  Then the message fields are compared, in both directions, with the JSON that
``GroundingResult.to_dict()`` writes: a field added to the dataclasses' JSON or to the messages
alone fails a test, and the mapping tables below say where each message field comes from.
"""

from __future__ import annotations

import json
import math
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from vlm_ros.core.grasp import GraspCandidate
from vlm_ros.core.types import (
    STATUSES,
    Candidate,
    Goal,
    GroundingResult,
    Instruction,
    ObjectQuery,
    Pose,
)

rosidl_adapter_parser = pytest.importorskip("rosidl_adapter.parser")
rosidl_adapter_msg = pytest.importorskip("rosidl_adapter.msg")
rosidl_adapter_srv = pytest.importorskip("rosidl_adapter.srv")
rosidl_adapter_action = pytest.importorskip("rosidl_adapter.action")
rosidl_parser_parser = pytest.importorskip("rosidl_parser.parser")
rosidl_parser_definition = pytest.importorskip("rosidl_parser.definition")

PACKAGE = "vlm_ros"
ROOT = Path(__file__).resolve().parents[1]
MSG_FILES = sorted((ROOT / "msg").glob("*.msg"))
SRV_FILES = sorted((ROOT / "srv").glob("*.srv"))
ACTION_FILES = sorted((ROOT / "action").glob("*.action"))

# The exact field lists, in wire order.  Changing a message is a deliberate act: update this table.
GROUNDED_TARGET_FIELDS: list[tuple[str, str]] = [
    ("int32", "id"),
    ("string", "label"),
    ("float32", "score"),
    ("float32[4]", "bbox"),
    ("string", "color"),
    ("float32", "color_fraction"),
    ("float32", "match"),
    ("string[]", "reasons"),
    ("float64", "depth_m"),
    ("float64", "width_m"),
    ("bool", "has_point"),
    ("geometry_msgs/Point", "point_camera"),
    ("bool", "has_point_base"),
    ("geometry_msgs/Point", "point_base"),
    ("float64", "grasp_width_m"),
    ("bool", "has_mask"),
    ("uint32[4]", "mask_box"),
    ("uint32[]", "mask_counts"),
]

GRASP_CANDIDATE_FIELDS: list[tuple[str, str]] = [
    ("string", "strategy"),
    ("float32", "score"),
    ("float64", "width_m"),
    ("string", "note"),
    ("geometry_msgs/Pose", "pose"),
    ("geometry_msgs/Vector3", "approach"),
    ("geometry_msgs/Point", "pregrasp"),
]

GROUNDING_RESULT_FIELDS: list[tuple[str, str]] = [
    ("std_msgs/Header", "header"),
    ("string", "status"),
    ("string", "message"),
    ("string", "command"),
    ("string", "action"),
    ("string", "language"),
    ("vlm_ros/GroundedTarget[]", "targets"),
    ("bool", "has_destination"),
    ("vlm_ros/GroundedTarget", "destination"),
    ("vlm_ros/GroundedTarget[]", "candidates"),
    ("string", "clarification"),
    ("string[]", "choices"),
    ("geometry_msgs/PoseStamped[]", "goals"),
    ("string[]", "goal_kinds"),
    ("string", "backend"),
    ("uint32", "image_width"),
    ("uint32", "image_height"),
    ("string[]", "timing_keys"),
    ("float32[]", "timing_values"),
    ("uint32", "step"),
    ("uint32", "step_count"),
    ("bool", "will_act"),
    ("string", "no_goal_reason"),
    ("vlm_ros/GraspCandidate[]", "grasps"),
    ("string", "json"),
]

GROUND_REQUEST_FIELDS: list[tuple[str, str]] = [
    ("string", "command"),
    ("bool", "use_latest_frame"),
    ("sensor_msgs/Image", "image"),
]
GROUND_RESPONSE_FIELDS: list[tuple[str, str]] = [("vlm_ros/GroundingResult", "result")]

# + the MCP server's hold: nothing of the command moves without a yes
INSTRUCT_GOAL_FIELDS: list[tuple[str, str]] = [*GROUND_REQUEST_FIELDS,
                                               ("bool", "hold_for_confirmation")]
INSTRUCT_RESULT_FIELDS: list[tuple[str, str]] = [
    ("string", "outcome"),
    ("vlm_ros/GroundingResult", "result"),
]
INSTRUCT_FEEDBACK_FIELDS: list[tuple[str, str]] = [
    ("string", "stage"),
    ("string", "question"),
    ("string[]", "choices"),
    ("uint32", "step"),
    ("uint32", "step_count"),
    ("string", "message"),
]

EXPECTED_FIELDS: dict[str, list[list[tuple[str, str]]]] = {
    "GroundedTarget": [GROUNDED_TARGET_FIELDS],
    "GraspCandidate": [GRASP_CANDIDATE_FIELDS],
    "GroundingResult": [GROUNDING_RESULT_FIELDS],
    "Ground": [GROUND_REQUEST_FIELDS, GROUND_RESPONSE_FIELDS],
    "Instruct": [INSTRUCT_GOAL_FIELDS, INSTRUCT_RESULT_FIELDS, INSTRUCT_FEEDBACK_FIELDS],
}

# GroundedTarget field -> the Candidate.to_dict() key it carries.  The has_* flags stand for the
# JSON's null: ROS 2 messages have no optional fields.
TARGET_FIELD_TO_JSON_KEY: dict[str, str] = {
    "id": "id",
    "label": "label",
    "score": "score",
    "bbox": "bbox",
    "color": "color",
    "color_fraction": "color_fraction",
    "match": "match",
    "reasons": "reasons",
    "depth_m": "depth_m",
    "width_m": "width_m",
    "has_point": "point_camera",  # has_point == (point_camera is not None)
    "point_camera": "point_camera",
    "has_point_base": "point_base",  # has_point_base == (point_base is not None)
    "point_base": "point_base",
    "grasp_width_m": "grasp_width_m",
    "has_mask": "mask",  # has_mask == (mask is not None)
    "mask_box": "mask",  # mask["box"]
    "mask_counts": "mask",  # mask["counts"]
}

# GraspCandidate field -> the GraspCandidate.to_dict() key(s) it carries.
GRASP_FIELD_TO_JSON_KEYS: dict[str, tuple[str, ...]] = {
    "strategy": ("strategy",),
    "score": ("score",),
    "width_m": ("width_m",),
    "note": ("note",),
    "pose": ("position", "orientation"),
    "approach": ("approach",),
    "pregrasp": ("pregrasp_position",),
}

# GroundingResult field -> the JSON paths (keys from GroundingResult.to_dict()) it carries.
RESULT_FIELD_TO_JSON_PATHS: dict[str, list[tuple[str, ...]]] = {
    "header": [("stamp",), ("frame_id",)],  # header.stamp <- stamp, header.frame_id <- frame_id
    "status": [("status",)],
    "message": [("message",)],
    "command": [("instruction", "text")],
    "action": [("instruction", "action")],
    "language": [("instruction", "language")],
    "targets": [("targets",)],
    "has_destination": [("destination",)],  # has_destination == (destination is not None)
    "destination": [("destination",)],
    "candidates": [("candidates",)],
    "clarification": [("clarification",)],
    "choices": [("choices",)],
    "goals": [("goals",)],  # see GOAL_JSON_KEY_TO_FIELD for each goal
    "goal_kinds": [("goals",)],  # goal_kinds[i] <- goals[i].kind
    "backend": [("backend",)],
    "image_width": [("image_size",)],  # image_size[0]
    "image_height": [("image_size",)],  # image_size[1]
    "timing_keys": [("timing_ms",)],  # the dict's keys, in order
    "timing_values": [("timing_ms",)],  # the dict's values, in order
    "step": [("step",)],
    "step_count": [("steps",)],  # len(steps)
    "will_act": [("will_act",)],
    "no_goal_reason": [("no_goal_reason",)],
    "grasps": [("grasps",)],  # see GRASP_FIELD_TO_JSON_KEYS for each candidate
    "json": [()],  # the whole document
}

# The parsed instruction beyond text/action/language only travels inside `json`: it is for
# debugging the parser, and a planner never needs it as typed fields.
INSTRUCTION_KEYS_ONLY_IN_JSON: dict[str, str] = {
    "target": "parsed referring expression of the object",
    "destination": "parsed referring expression of the place",
    "destination_relation": "in / on, already applied to the place goal",
    "is_followup": "whether the text answered a clarification question",
    "error": "why the text was rejected; also in `message`",
    "question": "what an `ask` step asks (presence / count / color); its answer is `message`",
    "recall": "the object is one the robot saw before (answered from the object memory)",
    "grasp_approach": "a pick's approach wish (\"top\": from above), applied to its grasps",
}

# Goal.to_dict() key -> where each GroundingResult.goals[i] (geometry_msgs/PoseStamped) keeps it.
GOAL_JSON_KEY_TO_FIELD: dict[str, str] = {
    "kind": "goal_kinds[i]",
    "frame_id": "goals[i].header.frame_id",
    "stamp": "goals[i].header.stamp",
    "pose": "goals[i].pose",
}
POSE_JSON_KEY_TO_FIELD: dict[str, str] = {
    "position": "goals[i].pose.position",
    "orientation": "goals[i].pose.orientation",
}


def _fields(spec: Any) -> list[tuple[str, str]]:
    return [(str(f.type), f.name) for f in spec.fields]


def _message_spec(name: str) -> Any:
    return rosidl_adapter_parser.parse_message_file(PACKAGE, str(ROOT / "msg" / f"{name}.msg"))


def _service_spec(name: str) -> Any:
    return rosidl_adapter_parser.parse_service_file(PACKAGE, str(ROOT / "srv" / f"{name}.srv"))


def _candidate(index: int) -> Candidate:
    return Candidate(
        id=index,
        label="cup",
        score=0.91,
        bbox=(10.0, 20.0, 110.0, 220.0),
        color="red",
        color_fraction=0.72,
        match=0.95,
        reasons=["colour red 72%", "leftmost"],
        depth_m=0.84,
        width_m=0.07,
        point_camera=(0.1, -0.05, 0.84),
        point_base=(0.6, 0.1, 0.75),
        grasp_width_m=0.065,
        mask=np.pad(np.ones((4, 3), bool), ((20, 456), (10, 627))),
    )


def _populated_result() -> GroundingResult:
    """A result with every optional part present, so every JSON key has a value to map."""
    instruction = Instruction(
        text="put the red cup in the box",
        language="en",
        action="place",
        target=ObjectQuery(noun="cup", text="the red cup", color="red"),
        destination=ObjectQuery(noun="box", text="the box"),
        destination_relation="in",
        is_followup=False,
        error=None,
    )
    return GroundingResult(
        status="ok",
        instruction=instruction,
        targets=[_candidate(0)],
        destination=_candidate(1),
        candidates=[_candidate(0), _candidate(1)],
        clarification="which cup?",
        choices=["the one on the left", "the one on the right"],
        message="grounded 'cup'",
        goals=[Goal(kind="grasp", frame_id="base_link", pose=Pose((0.6, 0.1, 0.75)), stamp=12.5)],
        frame_id="camera_color_optical_frame",
        stamp=12.5,
        image_size=(640, 480),
        timing_ms={"detect": 12.0, "total": 20.5},
        backend="ssd_coco",
        steps=[instruction, Instruction(text="then stop", action="stop")],
        step=1,
        grasps=[GraspCandidate("principal_axis", (0.6, 0.1, 0.77), (1.0, 0.0, 0.0, 0.0),
                               (0.0, 0.0, -1.0), 0.065, 0.82, "across the narrow side",
                               (0.6, 0.1, 0.92))],
    )


def _resolve(document: dict[str, Any], path: tuple[str, ...]) -> Any:
    value: Any = document
    for key in path:
        assert isinstance(value, dict) and key in value, f"JSON has no {'.'.join(path)}"
        value = value[key]
    return value


# --------------------------------------------------------------------------------------------
# The files are valid ROS interfaces
# --------------------------------------------------------------------------------------------


def test_interface_files_exist() -> None:
    assert [p.name for p in MSG_FILES] == ["GraspCandidate.msg", "GroundedTarget.msg",
                                          "GroundingResult.msg"]
    assert [p.name for p in SRV_FILES] == ["Ground.srv"]
    assert [p.name for p in ACTION_FILES] == ["Instruct.action"]


@pytest.mark.parametrize("path", MSG_FILES + SRV_FILES + ACTION_FILES, ids=lambda p: p.name)
def test_interface_converts_to_idl_and_parses(path: Path, tmp_path: Path) -> None:
    """The rosidl_generate_interfaces() front end: .msg/.srv/.action -> .idl -> rosidl_parser."""
    relative = path.relative_to(ROOT)
    if path.suffix == ".msg":
        idl = rosidl_adapter_msg.convert_msg_to_idl(ROOT, PACKAGE, relative, tmp_path)
    elif path.suffix == ".srv":
        idl = rosidl_adapter_srv.convert_srv_to_idl(ROOT, PACKAGE, relative, tmp_path)
    else:
        idl = rosidl_adapter_action.convert_action_to_idl(ROOT, PACKAGE, relative, tmp_path)
    locator = rosidl_parser_definition.IdlLocator(tmp_path, Path(idl).relative_to(tmp_path))
    content = rosidl_parser_parser.parse_idl_file(locator).content
    if path.suffix == ".msg":
        [message] = content.get_elements_of_type(rosidl_parser_definition.Message)
        structures = [message.structure]
    elif path.suffix == ".action":
        [action] = content.get_elements_of_type(rosidl_parser_definition.Action)
        structures = [action.goal.structure, action.result.structure, action.feedback.structure]
    else:
        [service] = content.get_elements_of_type(rosidl_parser_definition.Service)
        structures = [service.request_message.structure, service.response_message.structure]
    assert structures[0].namespaced_type.namespaces == [PACKAGE, relative.parts[0]]
    assert structures[0].namespaced_type.name.startswith(path.stem)
    # The IDL keeps the fields the adapter read: nothing is lost in translation.
    expected = EXPECTED_FIELDS[path.stem]
    assert [[m.name for m in s.members] for s in structures] == [
        [name for _, name in fields] for fields in expected
    ]


@pytest.mark.parametrize(
    ("name", "expected"),
    [("GroundedTarget", GROUNDED_TARGET_FIELDS), ("GroundingResult", GROUNDING_RESULT_FIELDS)],
)
def test_message_fields(name: str, expected: list[tuple[str, str]]) -> None:
    assert _fields(_message_spec(name)) == expected


def test_service_fields() -> None:
    spec = _service_spec("Ground")
    assert _fields(spec.request) == GROUND_REQUEST_FIELDS
    assert _fields(spec.response) == GROUND_RESPONSE_FIELDS


def test_status_constants_are_the_core_statuses() -> None:
    constants = {c.name: c.value for c in _message_spec("GroundingResult").constants}
    assert constants == {f"STATUS_{s.upper()}": s for s in STATUSES}


def test_every_field_is_commented() -> None:
    """Each field and constant line says what it means in a trailing comment."""
    for path in MSG_FILES + SRV_FILES + ACTION_FILES:
        lines = [ln.strip() for ln in path.read_text(encoding="utf-8").splitlines()]
        declarations = [ln for ln in lines if ln and not ln.startswith("#") and ln != "---"]
        uncommented = [ln for ln in declarations if "#" not in ln]
        assert not uncommented, f"{path.name}: {uncommented}"


def _share_dirs() -> list[Path]:
    """Where installed ROS packages keep their interface files: the ament prefixes when a ROS
    environment is sourced, else this Python environment (the ros-* wheels install there)."""
    prefixes = [p for p in os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep) if p]
    prefixes.append(sys.prefix)
    return [Path(p) / "share" for p in prefixes]


def test_every_referenced_type_exists() -> None:
    """Non-primitive field types resolve to this package's messages or to installed messages."""
    known = {f"{PACKAGE}/{p.stem}" for p in MSG_FILES}
    specs = [_message_spec(p.stem) for p in MSG_FILES]
    for path in SRV_FILES:
        service = _service_spec(path.stem)
        specs += [service.request, service.response]
    referenced = {
        f"{f.type.pkg_name}/{f.type.type}"
        for spec in specs
        for f in spec.fields
        if not f.type.is_primitive_type()
    }
    missing = []
    for name in sorted(referenced - known):
        pkg, msg = name.split("/")
        if not any((share / pkg / "msg" / f"{msg}.msg").is_file() for share in _share_dirs()):
            missing.append(name)
    if missing and all(not (share / "std_msgs").is_dir() for share in _share_dirs()):
        pytest.skip("no installed ROS message packages to resolve against")
    assert not missing
    known_types = [rosidl_adapter_parser.BaseType(t) for t in known | referenced]
    for spec in specs:
        rosidl_adapter_parser.validate_field_types(spec, known_types)


# --------------------------------------------------------------------------------------------
# The messages mirror the JSON schema
# --------------------------------------------------------------------------------------------


def test_grasp_candidate_mirrors_its_json() -> None:
    message_fields = {f.name for f in _message_spec("GraspCandidate").fields}
    json_keys = set(_populated_result().to_dict()["grasps"][0])
    assert set(GRASP_FIELD_TO_JSON_KEYS) == message_fields
    assert {k for keys in GRASP_FIELD_TO_JSON_KEYS.values() for k in keys} == json_keys


def test_grounded_target_mirrors_candidate_json() -> None:
    message_fields = {f.name for f in _message_spec("GroundedTarget").fields}
    json_keys = set(_candidate(0).to_dict())
    assert set(TARGET_FIELD_TO_JSON_KEY) == message_fields, "map every GroundedTarget field"
    assert set(TARGET_FIELD_TO_JSON_KEY.values()) == json_keys, (
        "every Candidate JSON key needs a GroundedTarget field: "
        f"{sorted(json_keys - set(TARGET_FIELD_TO_JSON_KEY.values()))}"
    )


def test_grounding_result_mirrors_result_json() -> None:
    document = _populated_result().to_dict()
    message_fields = {f.name for f in _message_spec("GroundingResult").fields}
    assert set(RESULT_FIELD_TO_JSON_PATHS) == message_fields, "map every GroundingResult field"

    for field_name, paths in RESULT_FIELD_TO_JSON_PATHS.items():
        for path in paths:
            assert _resolve(document, path) is not None, f"{field_name} <- {path} is null"

    carried = {path[0] for paths in RESULT_FIELD_TO_JSON_PATHS.values() for path in paths if path}
    assert set(document) == carried, (
        f"JSON keys with no message field: {sorted(set(document) - carried)}"
    )


def test_instruction_keys_are_mapped_or_deliberately_json_only() -> None:
    instruction = _populated_result().to_dict()["instruction"]
    typed = {
        path[1]
        for paths in RESULT_FIELD_TO_JSON_PATHS.values()
        for path in paths
        if len(path) == 2 and path[0] == "instruction"
    }
    assert not typed & set(INSTRUCTION_KEYS_ONLY_IN_JSON)
    assert set(instruction) == typed | set(INSTRUCTION_KEYS_ONLY_IN_JSON)


def test_goal_json_fits_pose_stamped() -> None:
    goal = _populated_result().to_dict()["goals"][0]
    assert set(goal) == set(GOAL_JSON_KEY_TO_FIELD)
    assert set(goal["pose"]) == set(POSE_JSON_KEY_TO_FIELD)
    assert len(goal["pose"]["position"]) == 3 and len(goal["pose"]["orientation"]) == 4


def test_json_values_fit_the_field_types() -> None:
    """Sizes and kinds that the message types fix: 4 bbox numbers, 3D points, 2 image sides, a
    JSON document that serialises (the `json` field is a string)."""
    document = _populated_result().to_dict()
    target = document["targets"][0]
    assert len(target["bbox"]) == 4
    assert len(target["point_camera"]) == 3 and len(target["point_base"]) == 3
    assert isinstance(target["id"], int)
    assert all(isinstance(r, str) for r in target["reasons"])
    assert len(document["image_size"]) == 2
    assert all(isinstance(k, str) for k in document["timing_ms"])
    assert json.loads(json.dumps(document, ensure_ascii=False)) == document


# --------------------------------------------------------------------------------------------
# With generated bindings (after a colcon build), the converter fills every field
# --------------------------------------------------------------------------------------------


def test_generated_message_round_trip() -> None:
    """Only where `vlm_ros.msg` was generated (a colcon build is on PYTHONPATH)."""
    interfaces = pytest.importorskip(
        "vlm_ros.msg", reason="vlm_ros.msg is generated by colcon; not built in this environment"
    )
    if not hasattr(interfaces, "GroundingResult"):
        pytest.skip("vlm_ros.msg has no generated GroundingResult")
    messages = pytest.importorskip("vlm_ros.ros.messages")
    header_mod = pytest.importorskip("std_msgs.msg")
    result = _populated_result()
    header = header_mod.Header(frame_id=result.frame_id)
    msg = messages.result_to_interface(interfaces, result, header, goal_msgs=[])
    document = result.to_dict()
    target = msg.targets[0]
    expected = document["targets"][0]
    assert target.label == expected["label"] and target.id == expected["id"]
    assert [round(v, 1) for v in target.bbox] == expected["bbox"]
    assert target.has_point and target.has_point_base
    assert math.isclose(target.point_base.x, expected["point_base"][0], abs_tol=1e-6)
    assert msg.has_destination and msg.command == document["instruction"]["text"]
    assert (msg.image_width, msg.image_height) == tuple(document["image_size"])
    assert dict(zip(msg.timing_keys, msg.timing_values)) == pytest.approx(document["timing_ms"])
    assert json.loads(msg.json) == document
