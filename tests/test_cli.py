"""The `vlm-ros` command line as users run it: real subprocesses, real photos, real weights.

Every call goes through ``python -m vlm_ros.cli`` (what the ``vlm-ros`` console script runs), so
these tests pin the public contract — exit codes, the one-line error format, and the JSON schema
that ``ground --json`` and ``say --json`` print — not the functions behind it.
"""

from __future__ import annotations

import json
import math
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from photos import photo_path
from tool_process import running

from vlm_ros import scenes
from vlm_ros.core.types import GroundingResult

COFFEE = str(photo_path("coffee"))
COFFEE_SIZE = (600, 400)  # width, height
RESULT_KEYS = set(GroundingResult(status="ok").to_dict())


def run_cli(*args: str, env: dict[str, str] | None = None,
            timeout_s: float = 120.0) -> subprocess.CompletedProcess[str]:
    """Run ``vlm-ros ARGS`` exactly as a shell would, capturing both streams."""
    return subprocess.run([sys.executable, "-m", "vlm_ros.cli", *args], capture_output=True,
                          text=True, timeout=timeout_s, env=env)


def ground_json(*args: str) -> dict[str, Any]:
    """``vlm-ros ground --json ARGS`` -> the one JSON object it prints (exit 0 asserted)."""
    proc = run_cli("ground", "--json", *args)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert len(lines) == 1, f"expected one JSON line on stdout, got:\n{proc.stdout}"
    result = json.loads(lines[0])
    assert isinstance(result, dict)
    return result


def assert_one_line_error(proc: subprocess.CompletedProcess[str]) -> str:
    """A user error: exit code 2 and exactly one 'vlm-ros[ SUBCOMMAND]: error:' line on stderr
    (argparse's format), no traceback."""
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, f"expected one stderr line, got:\n{proc.stderr}"
    assert re.match(r"vlm-ros( [a-z]+)*: error: \S", lines[0]), lines[0]
    return lines[0]


def _finite(values: list[float]) -> bool:
    return all(isinstance(v, int | float) and math.isfinite(v) for v in values)


# ---------------------------------------------------------------------------- ground: 2D


@pytest.fixture(scope="module")
def red_cup() -> dict[str, Any]:
    return ground_json("--image", COFFEE, "--command", "grab the red cup")


def test_ground_json_is_the_result_schema(red_cup: dict[str, Any]) -> None:
    assert set(red_cup) == RESULT_KEYS
    for key in ("status", "instruction", "targets", "candidates", "clarification", "timing_ms"):
        assert key in red_cup
    assert red_cup["backend"] == "ssd_coco"
    assert red_cup["image_size"] == list(COFFEE_SIZE)


def test_ground_red_cup_is_found(red_cup: dict[str, Any]) -> None:
    assert red_cup["status"] == "ok", red_cup["message"]
    assert red_cup["instruction"]["action"] == "pick"
    assert red_cup["instruction"]["language"] == "en"
    target = red_cup["targets"][0]
    assert target["label"] == "cup"
    bbox = target["bbox"]
    assert len(bbox) == 4 and _finite(bbox)
    x1, y1, x2, y2 = bbox
    width, height = COFFEE_SIZE
    assert 0 <= x1 < x2 <= width and 0 <= y1 < y2 <= height
    # No depth given: a 2D answer, and no goal is invented.
    assert red_cup["goals"] == []


def test_ground_chinese_command() -> None:
    result = ground_json("--image", COFFEE, "--command", "抓取红色杯子")
    assert result["status"] == "ok", result["message"]
    assert result["instruction"]["language"] == "zh"
    assert result["targets"][0]["label"] == "cup"


def test_ground_absent_colour_is_not_found_with_exit_0() -> None:
    result = ground_json("--image", COFFEE, "--command", "grab the blue cup")
    assert result["status"] == "not_found"
    assert result["targets"] == [] and result["goals"] == []


def test_ground_non_command_is_rejected_with_exit_0() -> None:
    result = ground_json("--image", COFFEE, "--command", "hello")
    assert result["status"] == "rejected"
    assert result["message"]
    assert result["goals"] == []


# ---------------------------------------------------------------------------- ground: 3D


def _write_depth_png(path: Path, depth_m: np.ndarray) -> None:
    """16UC1 millimetres, the ROS depth-image convention the CLI reads by default."""
    millimetres = np.round(depth_m * 1000.0).astype(np.uint16)
    assert cv2.imwrite(str(path), millimetres)


def _write_calibration(path: Path, fx: float, fy: float, cx: float, cy: float, width: int,
                       height: int) -> None:
    """A camera_calibration / camera_info_manager YAML, as `cameracalibrator` saves it."""
    path.write_text(
        f"image_width: {width}\n"
        f"image_height: {height}\n"
        "camera_name: test_camera\n"
        "camera_matrix:\n"
        "  rows: 3\n"
        "  cols: 3\n"
        f"  data: [{fx}, 0.0, {cx}, 0.0, {fy}, {cy}, 0.0, 0.0, 1.0]\n"
        "distortion_model: plumb_bob\n"
        "distortion_coefficients:\n"
        "  rows: 1\n"
        "  cols: 5\n"
        "  data: [0.0, 0.0, 0.0, 0.0, 0.0]\n",
        encoding="utf-8")


def test_ground_with_depth_and_calibration_gives_base_frame_goals(tmp_path: Path) -> None:
    rgb, depth, k = scenes.coffee()
    assert (rgb.shape[1], rgb.shape[0]) == COFFEE_SIZE
    depth_file, info_file = tmp_path / "depth.png", tmp_path / "camera.yaml"
    _write_depth_png(depth_file, depth)
    _write_calibration(info_file, k.fx, k.fy, k.cx, k.cy, k.width, k.height)

    result = ground_json("--image", COFFEE, "--command", "grab the red cup",
                         "--depth", str(depth_file), "--camera-info", str(info_file),
                         "--camera-pose", "0", "0", "0.6", "0", "0.6", "0")
    assert result["status"] == "ok", result["message"]
    target = result["targets"][0]
    assert target["label"] == "cup"
    point = target["point_base"]
    assert point is not None and len(point) == 3 and _finite(point)
    # Camera 0.6 m up, pitched down: the cup on the table is in front of the robot, below the lens.
    assert point[0] > 0.0 and point[2] < 0.6

    goals = {goal["kind"]: goal for goal in result["goals"]}
    assert {"grasp", "pregrasp"} <= set(goals)
    for goal in goals.values():
        assert goal["frame_id"] == "base_link"
        assert _finite(goal["pose"]["position"]) and _finite(goal["pose"]["orientation"])
    assert goals["pregrasp"]["pose"]["position"][2] > goals["grasp"]["pose"]["position"][2]


def _coffee_files(tmp_path: Path, depth_m: np.ndarray | None = None,
                  calibration_size: tuple[int, int] | None = None) -> tuple[str, str]:
    rgb, depth, k = scenes.coffee()
    depth_file, info_file = tmp_path / "depth.png", tmp_path / "camera.yaml"
    _write_depth_png(depth_file, depth if depth_m is None else depth_m)
    width, height = calibration_size or (k.width, k.height)
    _write_calibration(info_file, k.fx, k.fy, k.cx, k.cy, width, height)
    return str(depth_file), str(info_file)


def test_ground_without_camera_pose_gives_the_grounding_but_no_goals(tmp_path: Path) -> None:
    depth_file, info_file = _coffee_files(tmp_path)
    result = ground_json("--image", COFFEE, "--command", "grab the red cup",
                         "--depth", depth_file, "--camera-info", info_file)
    assert result["status"] == "ok", result["message"]
    assert result["targets"][0]["label"] == "cup"
    assert result["targets"][0]["point_camera"] is not None
    assert result["targets"][0]["point_base"] is None and result["goals"] == []
    assert "no camera extrinsics: set camera_pose_in_base or provide TF base_link <- " \
           "camera_color_optical_frame" in result["message"]


def test_ground_refuses_a_transposed_depth_image_like_the_node(tmp_path: Path) -> None:
    _, depth, _ = scenes.coffee()
    depth_file, info_file = _coffee_files(tmp_path, depth_m=np.ascontiguousarray(depth.T))
    proc = run_cli("ground", "--image", COFFEE, "--command", "grab the red cup", "--depth",
                   depth_file, "--camera-info", info_file, "--camera-pose", "0", "0", "0.6",
                   "0", "0.6", "0")
    line = assert_one_line_error(proc)
    assert proc.returncode == 2 and proc.stdout == ""
    assert "--depth is 400x600, not registered to the 600x400 colour image" in line


def test_ground_refuses_a_calibration_for_another_image_size(tmp_path: Path) -> None:
    depth_file, info_file = _coffee_files(tmp_path, calibration_size=(1280, 720))
    proc = run_cli("ground", "--image", COFFEE, "--command", "grab the red cup", "--depth",
                   depth_file, "--camera-info", info_file, "--camera-pose", "0", "0", "0.6",
                   "0", "0.6", "0")
    line = assert_one_line_error(proc)
    assert proc.returncode == 2 and proc.stdout == ""
    assert "1280x720 image but the image is 600x400" in line


def test_ground_annotate_writes_a_png_of_the_input_size(tmp_path: Path) -> None:
    out = tmp_path / "annotated.png"
    proc = run_cli("ground", "--image", COFFEE, "--command", "grab the red cup",
                   "--annotate", str(out))
    assert proc.returncode == 0, proc.stderr
    image = cv2.imread(str(out), cv2.IMREAD_COLOR)
    assert image is not None
    assert (image.shape[1], image.shape[0]) == COFFEE_SIZE
    # Without --json the CLI prints its human summary, starting with the status.
    assert proc.stdout.startswith("[ok]")


# ---------------------------------------------------------------------------- user errors


def test_missing_image_is_a_one_line_error(tmp_path: Path) -> None:
    proc = run_cli("ground", "--image", str(tmp_path / "nope.png"), "--command", "grab the cup")
    line = assert_one_line_error(proc)
    assert "nope.png" in line
    assert proc.stdout == ""


def test_text_file_named_png_is_a_one_line_error(tmp_path: Path) -> None:
    fake = tmp_path / "notes.png"
    fake.write_text("this is not an image\n", encoding="utf-8")
    proc = run_cli("ground", "--image", str(fake), "--command", "grab the cup")
    line = assert_one_line_error(proc)
    assert "notes.png" in line
    assert proc.stdout == ""


def test_missing_command_is_an_argparse_error() -> None:
    proc = run_cli("ground", "--image", COFFEE)
    assert proc.returncode != 0
    assert "--command" in proc.stderr
    assert "Traceback" not in proc.stderr


# Each: the arguments, then a word the one error line must contain.  All are refused before any
# model loads or any file is written.
BAD_ARGUMENTS: list[tuple[list[str], str]] = [
    (["ground", "--image", COFFEE, "--command", "grab the cup", "--annotate",
      "/no/such/folder/out.png"], "/no/such/folder"),
    (["ground", "--image", COFFEE, "--command", "grab the cup", "--annotate", "out.txt"],
     "image extension"),
    (["ground", "--image", COFFEE, "--command", "grab the cup", "--option", "junk"], "KEY=VALUE"),
    (["ground", "--image", COFFEE, "--command", "grab the cup", "--option", "junk=1"], "junk"),
    (["ground", "--image", COFFEE, "--command", "grab the cup", "--camera-pose", "nan", "0", "0",
      "0", "0", "0"], "finite"),
    (["ground", "--image", COFFEE, "--command", "grab the cup", "--camera-pose", "0", "0", "inf",
      "0", "0", "0"], "finite"),
    (["ground", "--image", COFFEE, "--command", "grab the cup", "--camera-pose", "1", "2"],
     "6 arguments"),
    (["ground", "--image", COFFEE, "--command", "grab the cup", "--camera-pose", "x", "0", "0",
      "0", "0", "0"], "not a number"),
    (["ground", "--image", COFFEE, "--command", "grab the cup", "--depth-scale", "0"], "> 0"),
    (["ground", "--image", COFFEE, "--command", "grab the cup", "--score-threshold", "1.5"],
     "between 0 and 1"),
    (["ground", "--image", COFFEE, "--command", "grab the cup", "--depth", "/no/such/depth.png"],
     "depth.png"),
    (["ground", "--image", COFFEE, "--command", "grab the cup", "--camera-info", COFFEE],
     "YAML"),
    (["ground", "--image", COFFEE], "--command"),
    (["no-such-subcommand"], "invalid choice"),
    (["say", "grab the cup", "--wait", "-1"], "> 0"),
    (["say", "grab the cup", "--node", "1robot/vlm ros"], "node name"),
    (["camera", "--image", COFFEE, "--rate", "0"], "> 0"),
    (["camera", "--image", "/no/such/photo.png"], "photo.png"),
    (["eval", "sim", "--scenes", "0"], ">= 1"),
    (["eval", "sim", "--backend-options", "junk"], "mapping"),
    (["bench", "--backend-options", "[1, 2]"], "mapping"),
    (["bench", "--out", "/no/such/folder/report.json"], "/no/such/folder"),
    (["bench", "--rate-hz", "fast"], "not a number"),
    (["soak", "--minutes", "-2"], "> 0"),
    (["listen", "--min-confidence", "2"], "between 0 and 1"),
    (["node", "--backend", "owl"], "--ros-args"),
    (["voice", "junk"], "--ros-args"),
]


@pytest.mark.parametrize(("args", "needle"), BAD_ARGUMENTS,
                         ids=[" ".join(a[:1] + a[-2:])[:60] for a, _ in BAD_ARGUMENTS])
def test_bad_argument_is_one_line_and_exit_2(args: list[str], needle: str,
                                             tmp_path: Path) -> None:
    env = dict(os.environ, ROS_DOMAIN_ID="not-a-domain")  # rclpy.init would fail: none may run
    proc = subprocess.run([sys.executable, "-m", "vlm_ros.cli", *args], capture_output=True,
                          text=True, timeout=120, env=env, cwd=tmp_path)
    line = assert_one_line_error(proc)
    assert needle in line, line
    assert proc.stdout == ""
    assert list(tmp_path.iterdir()) == []  # nothing written (no annotated image, no report)


@pytest.mark.parametrize("subcommand", ["node", "voice"])
@pytest.mark.parametrize("flag", ["--help", "-h"])
def test_node_help_prints_usage_without_starting_ros(subcommand: str, flag: str) -> None:
    # An invalid ROS_DOMAIN_ID makes rclpy.init fail: exit 0 proves ROS never started.
    env = dict(os.environ, ROS_DOMAIN_ID="not-a-domain")
    started = time.monotonic()
    proc = run_cli(subcommand, flag, env=env, timeout_s=30.0)
    assert proc.returncode == 0, proc.stderr
    assert time.monotonic() - started < 20.0
    assert proc.stdout.startswith(f"usage: vlm-ros {subcommand} [-h] [--ros-args")
    for accepted in ("-p NAME:=VALUE", "--params-file", "-r FROM:=TO", "__ns:=", "--log-level"):
        assert accepted in proc.stdout, accepted
    parameter = "camera_pose_in_base" if subcommand == "node" else "command_topic"
    assert parameter in proc.stdout
    assert "Traceback" not in proc.stderr


def test_help_states_the_units_of_numeric_flags() -> None:
    def help_of(*args: str) -> str:
        proc = run_cli(*args, "--help", timeout_s=30.0)
        assert proc.returncode == 0, proc.stderr
        return " ".join(proc.stdout.split())  # argparse wraps lines

    assert "x y z (m) roll pitch yaw (rad)" in help_of("ground")
    assert "metres per unit" in help_of("ground")
    assert "(Hz" in help_of("camera")
    assert "seconds" in help_of("say")
    bench = help_of("bench")
    assert "(s, default 20)" in bench and "(Hz, default 30)" in bench
    assert "(minutes" in help_of("soak")


def test_backends_lists_ssd_coco_as_usable() -> None:
    proc = run_cli("backends")
    assert proc.returncode == 0, proc.stderr
    rows = {row["name"]: row for row in json.loads(proc.stdout)}
    assert rows["ssd_coco"]["usable"] is True
    assert rows["ssd_coco"]["open_vocabulary"] is False


# ---------------------------------------------------------------------------- say (over DDS)


@pytest.fixture(scope="module")
def graph():
    from ros_harness import RosGraph

    # Reliable images for the same reason as test_node.py: best-effort large images are lossy.
    graph = RosGraph(["-p", "image_reliability:=reliable", "-p", "follow_rate_hz:=0.0",
                      "-p", "camera_pose_in_base:=[0.0, 0.0, 1.0, 0.0, 0.0, 0.0]"])
    yield graph
    graph.close()


@pytest.mark.ros
def test_say_gets_the_running_nodes_result(graph) -> None:
    graph.show(*scenes.coffee())
    # The subprocess inherits ROS_DOMAIN_ID / ROS_AUTOMATIC_DISCOVERY_RANGE from conftest.
    proc = run_cli("say", "grab the red cup", "--json", "--wait", "30", timeout_s=90.0)
    assert proc.returncode == 0, proc.stderr + "\nnode log:\n" + graph.node.tail(30)
    lines = proc.stdout.strip().splitlines()
    assert len(lines) == 1, proc.stdout
    result = json.loads(lines[0])
    assert set(result) == RESULT_KEYS
    assert result["status"] == "ok", result["message"]
    assert result["targets"][0]["label"] == "cup"
    assert graph.alive()


@pytest.mark.ros
@pytest.mark.parametrize("name", ["vlm_ros", "/vlm_ros/"])
def test_say_accepts_the_node_name_without_its_leading_slash(graph, name: str) -> None:
    graph.show(*scenes.coffee())
    proc = run_cli("say", "grab the red cup", "--node", name, "--json", "--wait", "30",
                   timeout_s=90.0)
    assert proc.returncode == 0, proc.stderr + "\nnode log:\n" + graph.node.tail(30)
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["status"] == "ok", result["message"]
    assert result["targets"][0]["label"] == "cup"


def test_node_names_are_qualified_however_they_are_written() -> None:
    from vlm_ros.ros.teleop import qualified_node_name

    for written, qualified in (("vlm_ros", "/vlm_ros"), ("/vlm_ros", "/vlm_ros"),
                               ("robot1/vlm_ros", "/robot1/vlm_ros"),
                               ("/robot1/vlm_ros/", "/robot1/vlm_ros")):
        assert qualified_node_name(written) == qualified
    for bad in ("", "/", "vlm ros", "1vlm", "robot1//vlm_ros", "~/x"):
        with pytest.raises(ValueError, match="invalid node name"):
            qualified_node_name(bad)


@pytest.mark.ros
def test_node_parameter_of_the_wrong_type_is_one_line_and_exit_2() -> None:
    # Integers where the node declares doubles: rclpy refuses the type; one line, no traceback.
    proc = run_cli("node", "--ros-args", "-p", "camera_pose_in_base:=[0, 0, 1, 0, 0, 0]",
                   timeout_s=60.0)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "camera_pose_in_base" in lines[0] and "1.0, not 1" in lines[0]


def _running(args: list[str], ready: str) -> Any:
    """``vlm-ros ARGS`` in the background once it has said ``ready`` (tool_process.running)."""
    return running([sys.executable, "-m", "vlm_ros.cli", *args], ready)


@pytest.mark.ros
def test_camera_logs_what_it_publishes(tmp_path: Path) -> None:
    with _running(["camera", "--image", COFFEE, "--rate", "20", "--log-every", "0.3"],
                  "published ") as (proc, seen):
        proc.send_signal(signal.SIGINT)
        _out, err = proc.communicate(timeout=30)
    log = "".join(seen) + err
    assert proc.returncode == 0, log
    assert "publishing 600x400 rgb8 on /camera/image" in log
    assert "CameraInfo on /camera/camera_info at 20 Hz" in log
    counts = [int(n) for n in re.findall(r"published (\d+) frames on /camera/image", log)]
    assert counts and counts[0] > 0


@pytest.mark.ros
def test_say_without_a_node_fails_with_one_line() -> None:
    # A domain no test node lives on (conftest picks 100..200), so nothing can answer.
    empty_domain = "231" if os.environ.get("ROS_DOMAIN_ID") != "231" else "232"
    env = dict(os.environ, ROS_DOMAIN_ID=empty_domain, ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST")
    proc = run_cli("say", "grab the red cup", "--wait", "2", env=env, timeout_s=60.0)
    line = assert_one_line_error(proc)
    assert "/vlm_ros" in line
    assert proc.stdout == ""


def test_score_threshold_unset_is_the_backends_own_default(tmp_path: Path) -> None:
    """No --score-threshold: the owl backend runs at its own 0.1 and the core's floor follows it,
    so a detection scoring 0.15 is a candidate; --score-threshold 0.3 drops it."""
    pytest.importorskip("transformers")
    from test_backend_owl import save_tiny_owl

    model = save_tiny_owl(tmp_path / "owl", "owlv2", score=0.15)  # every box scores ~0.15
    args = ("--image", str(photo_path("coffee")), "--command", "grab the cup", "--backend", "owl",
            "--model", str(model), "--device", "cpu")
    unset = ground_json(*args)
    assert unset["status"] in ("ok", "ambiguous"), unset["message"]
    assert unset["candidates"]
    for candidate in unset["candidates"]:
        assert 0.14 < candidate["score"] < 0.16
        assert not any("dropped" in reason for reason in candidate["reasons"])
    strict = ground_json(*args, "--score-threshold", "0.3")
    assert strict["status"] == "not_found" and not strict["candidates"]
