"""The Gazebo (gz-sim) integration files agree with each other and with the vlm_ros node.

Gazebo cannot be installed on this machine (no gz-sim, ros_gz or ROS `launch` packages), so these
are structural checks only: the world parses as XML and has the systems, objects and RGB-D camera
it needs; the ros_gz_bridge YAML maps exactly the camera's gz topics onto exactly the topics the
node subscribes; and the launch file's static transforms put the camera where the SDF puts it.
A mismatch in any of these would otherwise only show on a Gazebo machine as a silent lack of
images or a target placed in the wrong spot.  Where `gz` or ROS `launch` happen to be installed,
the SDF is also checked by `gz sdf -k` and the launch description is built for real; elsewhere
those parts skip and say why.
"""

from __future__ import annotations

import ast
import importlib.util
import re
import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from vlm_ros.core.geometry import Transform, camera_extrinsics

ROOT = Path(__file__).resolve().parents[1]
WORLD = ROOT / "worlds" / "tabletop.sdf"
BRIDGE = ROOT / "config" / "gz_bridge.yaml"
GAZEBO_LAUNCH = ROOT / "launch" / "gazebo.launch.py"
VLM_LAUNCH = ROOT / "launch" / "vlm_ros.launch.py"
NODE_SOURCE = ROOT / "vlm_ros" / "ros" / "node.py"
PARAMS = ROOT / "config" / "vlm_ros.yaml"

REQUIRED_SYSTEMS = {
    "gz::sim::systems::Physics": "gz-sim-physics-system",
    "gz::sim::systems::UserCommands": "gz-sim-user-commands-system",
    "gz::sim::systems::SceneBroadcaster": "gz-sim-scene-broadcaster-system",
    "gz::sim::systems::Sensors": "gz-sim-sensors-system",
}
# ROS type -> gz type pairs that ros_gz_bridge converts (its README's table).
BRIDGE_TYPE_PAIRS = {
    ("sensor_msgs/msg/Image", "gz.msgs.Image"),
    ("sensor_msgs/msg/CameraInfo", "gz.msgs.CameraInfo"),
    ("sensor_msgs/msg/PointCloud2", "gz.msgs.PointCloudPacked"),
    ("rosgraph_msgs/msg/Clock", "gz.msgs.Clock"),
}
BRIDGE_KEYS = {"ros_topic_name", "gz_topic_name", "ros_type_name", "gz_type_name", "direction"}
# Suffixes an rgbd_camera sensor appends to its <topic> (gz-sensors RgbdCameraSensor).
RGBD_SUFFIXES = {"image": "/image", "depth": "/depth_image", "camera_info": "/camera_info"}
NODE_CAMERA_TOPICS = {"/camera/image", "/camera/depth", "/camera/camera_info"}


# --------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------


def _world() -> ET.Element:
    world = ET.parse(WORLD).getroot().find("world")
    assert world is not None, "tabletop.sdf has no <world>"
    return world


def _bridge() -> list[dict[str, Any]]:
    entries = yaml.safe_load(BRIDGE.read_text())
    assert isinstance(entries, list) and entries, "the bridge config must be a non-empty list"
    return entries


def _pose(element: ET.Element | None) -> Transform:
    """An SDF <pose> (x y z roll pitch yaw, relative to the parent) as a Transform."""
    text = element.findtext("pose") if element is not None else None
    if not text:
        return Transform.identity()
    assert element.find("pose").get("relative_to") is None, "only parent-relative poses here"
    return Transform.from_xyz_rpy(*(float(v) for v in text.split()))


def _camera_sensor() -> tuple[ET.Element, ET.Element, ET.Element]:
    """(model, link, sensor) of the world's one RGB-D camera."""
    found = [(model, link, sensor)
             for model in _world().findall("model")
             for link in model.findall("link")
             for sensor in link.findall("sensor")
             if sensor.get("type") in ("rgbd_camera", "rgbd")]
    assert len(found) == 1, f"expected one rgbd_camera sensor, found {len(found)}"
    return found[0]


def _launch_tree(path: Path) -> ast.Module:
    return ast.parse(path.read_text(), filename=str(path))


def _launch_constant(name: str) -> Any:
    """A module-level literal of gazebo.launch.py, read without importing ROS's `launch`."""
    for node in _launch_tree(GAZEBO_LAUNCH).body:
        target = node.target if isinstance(node, ast.AnnAssign) else (
            node.targets[0] if isinstance(node, ast.Assign) else None)
        if isinstance(target, ast.Name) and target.id == name:
            return ast.literal_eval(node.value)
    raise AssertionError(f"gazebo.launch.py defines no literal {name}")


def _string_literals(path: Path) -> set[str]:
    return {n.value for n in ast.walk(_launch_tree(path))
            if isinstance(n, ast.Constant) and isinstance(n.value, str)}


def _close(a: Transform, b: Transform) -> bool:
    return bool(np.allclose(a.as_matrix(), b.as_matrix(), atol=1e-9))


# --------------------------------------------------------------------------------------------
# The world
# --------------------------------------------------------------------------------------------


def test_world_is_sdf_with_the_systems_gz_sim_needs() -> None:
    root = ET.parse(WORLD).getroot()
    assert root.tag == "sdf"
    major, minor = (int(v) for v in root.get("version", "0.0").split(".")[:2])
    assert (major, minor) >= (1, 9)
    plugins = {p.get("name"): p for p in _world().findall("plugin")}
    for name, filename in REQUIRED_SYSTEMS.items():
        assert name in plugins, f"world lacks the {name} system"
        assert plugins[name].get("filename") == filename
    assert plugins["gz::sim::systems::Sensors"].findtext("render_engine") == "ogre2"


def test_world_has_sun_ground_static_table_coloured_cups_and_a_bowl() -> None:
    world = _world()
    assert any(light.get("type") == "directional" for light in world.findall("light"))
    models = {m.get("name"): m for m in world.findall("model")}
    assert "ground_plane" in models
    assert models["table"].findtext("static") == "true"
    cups = {name: model for name, model in models.items() if name.endswith("_cup")}
    assert {"red_cup", "blue_cup"} <= set(cups)
    assert "bowl" in models
    # The colour in the name is the colour rendered: its diffuse channel dominates.
    channel = {"red": 0, "green": 1, "blue": 2}
    for name, model in cups.items():
        rgb = [float(v) for v in model.findtext("link/visual/material/diffuse").split()[:3]]
        assert int(np.argmax(rgb)) == channel[name.removesuffix("_cup")], (name, rgb)
    # Everything on the table stands on its top surface (z = 0.75 m), inside its footprint.
    table_x = float(models["table"].findtext("pose").split()[0])
    for name in [*cups, "bowl"]:
        x, y, z = (float(v) for v in models[name].findtext("pose").split()[:3])
        assert abs(x - table_x) < 0.4 and abs(y) < 0.6 and 0.75 <= z < 0.85, name


def test_camera_sensor_is_a_640x480_rgbd_camera_at_15_hz() -> None:
    _model, _link, sensor = _camera_sensor()
    assert sensor.findtext("always_on") == "true"
    assert float(sensor.findtext("update_rate")) == 15.0
    assert int(sensor.findtext("camera/image/width")) == 640
    assert int(sensor.findtext("camera/image/height")) == 480
    hfov = float(sensor.findtext("camera/horizontal_fov"))
    assert 0.8 < hfov < 1.6, "a real RGB-D camera sees 45-90 degrees across"
    assert float(sensor.findtext("camera/depth_camera/clip/far")) >= 2.0


def test_camera_frame_id_is_the_optical_frame_the_launch_file_publishes() -> None:
    _model, _link, sensor = _camera_sensor()
    assert sensor.findtext("gz_frame_id") == _launch_constant("OPTICAL_FRAME")


def test_the_camera_sees_the_table() -> None:
    """The optical axis meets the table top inside its footprint, so the cups are in view."""
    model, link, sensor = _camera_sensor()
    optical_in_world = _pose(model).compose(_pose(link)).compose(_pose(sensor)).compose(
        camera_extrinsics(0, 0, 0))
    origin = np.array(optical_in_world.translation)
    axis = optical_in_world.as_matrix()[:3, 2]  # optical z: the viewing direction
    assert axis[2] < 0, "the camera must look down at the table"
    hit = origin + axis * (0.75 - origin[2]) / axis[2]
    table = {m.get("name"): m for m in _world().findall("model")}["table"]
    table_x = float(table.findtext("pose").split()[0])
    assert abs(hit[0] - table_x) < 0.4 and abs(hit[1]) < 0.6, hit


# --------------------------------------------------------------------------------------------
# The bridge
# --------------------------------------------------------------------------------------------


def test_bridge_entries_are_complete_known_pairs_from_gazebo_to_ros() -> None:
    for entry in _bridge():
        assert BRIDGE_KEYS <= set(entry), entry
        assert (entry["ros_type_name"], entry["gz_type_name"]) in BRIDGE_TYPE_PAIRS, entry
        assert entry["direction"] == "GZ_TO_ROS", entry
        assert entry["ros_topic_name"].startswith("/") and entry["gz_topic_name"].startswith("/")


def test_bridge_ros_topics_are_exactly_the_node_camera_topics_and_clock() -> None:
    ros_topics = [entry["ros_topic_name"] for entry in _bridge()]
    assert len(ros_topics) == len(set(ros_topics)), "a ROS topic is bridged twice"
    assert set(ros_topics) == NODE_CAMERA_TOPICS | {"/clock"}


def test_node_subscribes_the_bridged_camera_topics() -> None:
    """The node's own create_subscription names, resolved in the root namespace."""
    subscribed = {"/" + call.args[1].value
                  for call in ast.walk(_launch_tree(NODE_SOURCE))
                  if isinstance(call, ast.Call) and getattr(call.func, "attr", "")
                  == "create_subscription" and isinstance(call.args[1], ast.Constant)}
    assert NODE_CAMERA_TOPICS <= subscribed


def test_bridge_gz_topics_are_the_camera_sensor_topics() -> None:
    _model, _link, sensor = _camera_sensor()
    base = sensor.findtext("topic").rstrip("/")
    by_ros = {entry["ros_topic_name"]: entry for entry in _bridge()}
    assert by_ros["/camera/image"]["gz_topic_name"] == base + RGBD_SUFFIXES["image"]
    assert by_ros["/camera/depth"]["gz_topic_name"] == base + RGBD_SUFFIXES["depth"]
    assert by_ros["/camera/camera_info"]["gz_topic_name"] == base + RGBD_SUFFIXES["camera_info"]
    assert by_ros["/clock"]["gz_topic_name"] == "/clock"
    assert by_ros["/camera/camera_info"]["gz_type_name"] == "gz.msgs.CameraInfo"


# --------------------------------------------------------------------------------------------
# The launch file
# --------------------------------------------------------------------------------------------


def test_launch_file_declares_its_arguments_and_starts_gazebo_bridge_tf_and_node() -> None:
    tree = _launch_tree(GAZEBO_LAUNCH)
    functions = {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}
    assert "generate_launch_description" in functions
    names = {row[0] for row in _literal_rows("LAUNCH_ARGUMENTS")}
    assert {"world", "headless", "bridge_config"} <= names
    literals = _string_literals(GAZEBO_LAUNCH)
    for needed in ("gz_sim.launch.py", "gz_args", "ros_gz_sim", "ros_gz_bridge",
                   "parameter_bridge", "config_file", "static_transform_publisher",
                   "vlm_ros.launch.py", "tabletop.sdf", "gz_bridge.yaml", "-s"):
        assert needed in literals, f"gazebo.launch.py never mentions {needed!r}"


def _literal_rows(name: str) -> list[tuple[str, ...]]:
    """Rows of a table like LAUNCH_ARGUMENTS whose first column is a string literal (other
    columns may be substitutions, which literal_eval cannot read)."""
    for node in _launch_tree(GAZEBO_LAUNCH).body:
        if isinstance(node, ast.AnnAssign) and getattr(node.target, "id", "") == name:
            return [(ast.literal_eval(row.elts[0]),) for row in node.value.elts]  # type: ignore
    raise AssertionError(f"gazebo.launch.py defines no {name}")


def test_launch_passes_sim_time_and_the_bridged_topics_to_vlm_ros() -> None:
    tree = _launch_tree(GAZEBO_LAUNCH)
    sim_time = [
        node for node in ast.walk(tree) if isinstance(node, ast.Dict)
        and any(isinstance(k, ast.Constant) and k.value == "use_sim_time" for k in node.keys)
    ]
    values = {ast.literal_eval(v) for d in sim_time for k, v in zip(d.keys, d.values)
              if isinstance(k, ast.Constant) and k.value == "use_sim_time"}
    assert values and all(str(v).lower() == "true" for v in values)
    camera_topics = _launch_constant("CAMERA_TOPICS")
    assert set(camera_topics.values()) == NODE_CAMERA_TOPICS
    # The keys are vlm_ros.launch.py's own arguments, so the remappings really happen.
    vlm_arguments = {ast.literal_eval(row.elts[0]) for node in _launch_tree(VLM_LAUNCH).body
                     if isinstance(node, ast.AnnAssign)
                     and getattr(node.target, "id", "") == "LAUNCH_ARGUMENTS"
                     for row in node.value.elts}  # type: ignore
    assert set(camera_topics) | {"use_sim_time", "backend"} <= vlm_arguments


def test_static_transforms_put_the_camera_where_the_sdf_does() -> None:
    model, link, sensor = _camera_sensor()
    sdf_camera = _pose(model).compose(_pose(link)).compose(_pose(sensor))
    camera_in_base = _launch_constant("CAMERA_POSE_IN_BASE")
    assert _close(Transform.from_xyz_rpy(*camera_in_base), sdf_camera)
    # base -> camera_link -> optical, as tf2 will chain them, is exactly what the node computes
    # from camera_pose_in_base when it runs without tf2, so the two paths agree.
    chain = Transform.from_xyz_rpy(*camera_in_base).compose(
        Transform.from_xyz_rpy(*_launch_constant("OPTICAL_IN_CAMERA")))
    assert _close(chain, camera_extrinsics(*camera_in_base))


def test_launch_frames_match_the_parameters_file() -> None:
    params = yaml.safe_load(PARAMS.read_text())
    (node_params,) = params.values()
    assert _launch_constant("BASE_FRAME") == node_params["ros__parameters"]["base_frame"]


def test_launch_defaults_point_at_files_the_package_installs() -> None:
    """The world and bridge defaults resolve under share/vlm_ros, so CMake must install both
    folders; `ros2 launch vlm_ros gazebo.launch.py` would otherwise find no world."""
    assert WORLD.is_file() and BRIDGE.is_file()
    cmake = (ROOT / "CMakeLists.txt").read_text()
    installed = set()
    for match in re.finditer(r"install\s*\(\s*DIRECTORY([^)]*)DESTINATION\s+share", cmake):
        installed.update(match.group(1).split())
    assert {"launch", "config", "worlds"} <= installed, installed


def test_launch_description_builds() -> None:
    """With ROS's launch, launch_ros and ros_gz_sim present, build the description for real."""
    # `launch.actions`, not `launch`: this repo's own launch/ folder imports as a namespace
    # package named `launch` whenever the repo root is on sys.path.
    pytest.importorskip("launch.actions", reason="ROS 'launch' is not installed (no PyPI wheel)")
    pytest.importorskip("launch_ros.actions", reason="ROS 'launch_ros' is not installed")
    from launch.actions import DeclareLaunchArgument, IncludeLaunchDescription, OpaqueFunction
    from launch_ros.actions import Node

    spec = importlib.util.spec_from_file_location("gazebo_launch", GAZEBO_LAUNCH)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    description = module.generate_launch_description()
    declared = {a.name for a in description.entities if isinstance(a, DeclareLaunchArgument)}
    assert declared == {row[0] for row in module.LAUNCH_ARGUMENTS}
    assert any(isinstance(a, OpaqueFunction) for a in description.entities)
    assert any(isinstance(a, IncludeLaunchDescription) for a in description.entities)
    assert sum(isinstance(a, Node) for a in description.entities) == 3  # bridge + 2 static TFs


def test_gz_accepts_the_world() -> None:
    """`gz sdf -k` validates against the installed SDFormat, where Gazebo is installed."""
    gz = shutil.which("gz")
    if gz is None:
        pytest.skip("Gazebo (the gz tool) is not installed on this machine")
    result = subprocess.run([gz, "sdf", "-k", str(WORLD)], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0 and "Valid" in result.stdout, result.stdout + result.stderr
