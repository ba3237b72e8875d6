"""Properties every launch file must have, read with `ast` (ROS's `launch` is not installable here).

- every launch argument has a description, and the README lists it;
- a params_file that is not a file fails the launch (launch_ros would only warn);
- every Node ends the launch when it exits, with a handler that fails the launch on a non-zero
  exit code (LaunchService.run() returns 1 only for an error raised inside launch; a Shutdown
  action alone ends `ros2 launch` with exit code 0);
- topic defaults are relative, so a namespace moves them (gazebo.launch.py's CAMERA_TOPICS are
  the bridge's fixed outputs and exempt), and the voice node's command topic reaches the vlm_ros
  node of the same namespace.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LAUNCH_FILES = sorted((ROOT / "launch").glob("*.launch.py"))
README = (ROOT / "README.md").read_text(encoding="utf-8")


def _tree(path: Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"))


def _calls(tree: ast.AST, name: str) -> list[ast.Call]:
    return [n for n in ast.walk(tree) if isinstance(n, ast.Call)
            and isinstance(n.func, ast.Name) and n.func.id == name]


def _arguments_table(tree: ast.Module) -> list[tuple[str, ast.expr, str]]:
    """LAUNCH_ARGUMENTS rows: (name, default expression, description)."""
    for node in tree.body:
        if (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)
                and node.target.id == "LAUNCH_ARGUMENTS" and node.value is not None):
            assert isinstance(node.value, ast.Tuple)
            rows = []
            for row in node.value.elts:
                assert isinstance(row, ast.Tuple) and len(row.elts) == 3, ast.unparse(row)
                name, default, description = row.elts
                rows.append((ast.literal_eval(name), default, ast.literal_eval(description)))
            return rows
    raise AssertionError("no LAUNCH_ARGUMENTS table")


def test_there_are_launch_files() -> None:
    assert {p.name for p in LAUNCH_FILES} >= {"vlm_ros.launch.py", "voice.launch.py",
                                              "gazebo.launch.py"}


@pytest.mark.parametrize("path", LAUNCH_FILES, ids=lambda p: p.name)
def test_every_launch_argument_has_a_description(path: Path) -> None:
    tree = _tree(path)
    declares = _calls(tree, "DeclareLaunchArgument")
    assert declares, f"{path.name} declares no arguments"
    for call in declares:
        keywords = {k.arg for k in call.keywords}
        assert "description" in keywords, f"{path.name}: {ast.unparse(call)}"
    for name, _default, description in _arguments_table(tree):
        assert len(description.strip()) >= 10, f"{path.name}: {name} has no real description"


@pytest.mark.parametrize("path", LAUNCH_FILES, ids=lambda p: p.name)
def test_readme_lists_every_launch_argument(path: Path) -> None:
    section = README.split(f"`{path.name}` arguments", 1)
    assert len(section) == 2, f"README has no '`{path.name}` arguments' table"
    table = section[1].split("\n\n", 2)[1]  # the table follows the heading line's paragraph
    for name, _default, _description in _arguments_table(_tree(path)):
        assert re.search(rf"^\| `{re.escape(name)}` \|", table, re.MULTILINE), (
            f"README's {path.name} table lacks {name}")


@pytest.mark.parametrize("path", LAUNCH_FILES, ids=lambda p: p.name)
def test_every_node_ends_the_launch_when_it_exits(path: Path) -> None:
    tree = _tree(path)
    functions = {n.name: n for n in tree.body if isinstance(n, ast.FunctionDef)}
    nodes = _calls(tree, "Node")
    assert nodes, f"{path.name} starts no Node"
    for call in nodes:
        on_exit = {k.arg: k.value for k in call.keywords}.get("on_exit")
        assert isinstance(on_exit, ast.Name), f"{path.name}: Node without on_exit"
        handler = functions[on_exit.id]
        # Non-zero exit code -> raise (launch's return code 1); otherwise a Shutdown action.
        raises = [n for n in ast.walk(handler) if isinstance(n, ast.Raise)]
        assert raises, f"{path.name}: {handler.name} never fails the launch"
        tests = [ast.unparse(n.test) for n in ast.walk(handler) if isinstance(n, ast.If)]
        assert "event.returncode != 0" in tests
        assert _calls(handler, "Shutdown"), f"{path.name}: {handler.name} emits no Shutdown"


def test_a_params_file_that_is_not_a_file_fails_the_launch() -> None:
    # launch_ros only logs "Parameter file path is not a file" and starts the node on its
    # defaults; vlm_ros.launch.py checks the path itself and raises (ros2 launch exits 1).
    tree = _tree(ROOT / "launch" / "vlm_ros.launch.py")
    checks = [n for n in ast.walk(tree) if isinstance(n, ast.If)
              and ast.unparse(n.test) == "not os.path.isfile(params_file)"
              and any(isinstance(s, ast.Raise) for s in n.body)]
    assert checks, "vlm_ros.launch.py does not fail on a params_file that is not a file"


@pytest.mark.parametrize("path", [p for p in LAUNCH_FILES if p.name != "gazebo.launch.py"],
                         ids=lambda p: p.name)
def test_topic_defaults_are_relative(path: Path) -> None:
    topics = [(name, default) for name, default, _ in _arguments_table(_tree(path))
              if name.endswith("_topic")]
    assert topics
    for name, default in topics:
        value = ast.literal_eval(default)
        assert value and not value.startswith("/"), f"{path.name}: {name} default {value!r}"


def test_node_topic_parameter_defaults_are_relative() -> None:
    from vlm_ros.ros.params import PARAMETERS
    from vlm_ros.ros.voice_node import VOICE_PARAMETERS

    for table in (PARAMETERS, VOICE_PARAMETERS):
        for name, (default, _) in table.items():
            if name.endswith("_topic") and isinstance(default, str):
                assert not default.startswith("/"), f"{name} default {default!r} is absolute"


def test_voice_launch_default_command_topic_is_the_voice_nodes() -> None:
    from vlm_ros.ros.voice_node import VOICE_PARAMETERS

    rows = {name: ast.literal_eval(default) for name, default, _ in
            _arguments_table(_tree(ROOT / "launch" / "voice.launch.py"))}
    assert rows["command_topic"] == VOICE_PARAMETERS["command_topic"][0] == "vlm_ros/command"


@pytest.mark.ros
def test_voice_and_vlm_ros_nodes_in_one_namespace_share_the_command_topic() -> None:
    """rclpy's own name resolution: the voice node's default command_topic in /robot1 is the
    ~/command of the vlm_ros node in /robot1 (and no longer the root namespace's)."""
    pytest.importorskip("rclpy")
    import rclpy
    from rclpy.node import Node
    from std_msgs.msg import String

    from vlm_ros.ros.voice_node import VOICE_PARAMETERS

    context = rclpy.Context()
    rclpy.init(context=context)
    try:
        voice = Node("vlm_voice", namespace="/robot1", context=context)
        vlm = Node("vlm_ros", namespace="/robot1", context=context)
        publisher = voice.create_publisher(String, VOICE_PARAMETERS["command_topic"][0], 10)
        subscription = vlm.create_subscription(String, "~/command", lambda _msg: None, 10)
        assert publisher.topic_name == subscription.topic_name == "/robot1/vlm_ros/command"
        root_voice = Node("vlm_voice", context=context)
        root_publisher = root_voice.create_publisher(String, VOICE_PARAMETERS["command_topic"][0],
                                                     10)
        assert root_publisher.topic_name == "/vlm_ros/command"
        for node in (voice, vlm, root_voice):
            node.destroy_node()
    finally:
        rclpy.shutdown(context=context)
