"""The colcon/ament side of the package is complete and consistent.

package.xml, CMakeLists.txt, the interface files, the node entry script, the launch file and the
default parameters must agree with each other: a message added without being listed in CMake, a
dependency used but not declared, or a parameter the node reads but the YAML lacks would each only
surface on a ROS machine at build or launch time.  These tests catch that here.  Where a real ROS
environment is present (ament_cmake found, launch importable) the build and the launch description
are exercised for real; elsewhere those parts skip and say why.
"""

from __future__ import annotations

import ast
import importlib.util
import os
import re
import shutil
import stat
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
import yaml

from vlm_ros.ros.params import PARAMETERS

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "vlm_ros"
NODE_NAME = "vlm_ros"
# Key of the node's block in the params file: "/**/" makes it apply in any namespace (a bare
# "vlm_ros" key only matches the node in the root namespace, so `namespace:=robot1` would silently
# drop every parameter).
PARAMS_KEY = f"/**/{NODE_NAME}"

REQUIRED_BUILDTOOL = {"ament_cmake", "ament_cmake_python", "rosidl_default_generators"}
REQUIRED_DEPEND = {
    "std_msgs", "sensor_msgs", "geometry_msgs", "nav_msgs", "visualization_msgs",
    "diagnostic_msgs", "builtin_interfaces",
}
REQUIRED_EXEC = {
    "rclpy", "rosidl_default_runtime", "launch", "launch_ros", "python3-numpy",
    "python3-opencv", "python3-yaml", "rcl_interfaces", "lifecycle_msgs",
}
REQUIRED_TEST = {"python3-pytest", "ament_cmake_pytest"}
# Optional at run time: never a hard dependency, each behind a REP 149 condition on its variable,
# so a plain `rosdep install` does not pull Gazebo (or tf2 / cv_bridge) for everyone.
OPTIONAL = {"tf2_ros": "VLM_ROS_OPTIONAL", "vision_msgs": "VLM_ROS_OPTIONAL",
            "cv_bridge": "VLM_ROS_OPTIONAL", "ros_gz_sim": "VLM_ROS_GAZEBO",
            "ros_gz_bridge": "VLM_ROS_GAZEBO"}
DEPENDENCY_TAGS = ("depend", "build_depend", "build_export_depend", "exec_depend",
                   "buildtool_depend", "test_depend")

LAUNCH_ARGUMENTS = {
    "image_topic", "depth_topic", "camera_info_topic", "params_file", "namespace", "backend",
    "use_sim_time", "log_level",
}
NODE_INPUT_TOPICS = {"camera/image", "camera/image/compressed", "camera/depth", "camera/camera_info"}


# --------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------


def _package_xml() -> ET.Element:
    return ET.parse(ROOT / "package.xml").getroot()


def _tags(root: ET.Element, tag: str) -> set[str]:
    return {(e.text or "").strip() for e in root.findall(tag)}


def _cmake_text() -> str:
    """CMakeLists.txt without comments, whitespace collapsed: easy to search for commands."""
    lines = [ln.split("#", 1)[0] for ln in (ROOT / "CMakeLists.txt").read_text().splitlines()]
    return re.sub(r"\s+", " ", " ".join(lines))


def _cmake_calls(command: str) -> list[str]:
    """Argument strings of every `command(...)` call (no nested parentheses in our file)."""
    return re.findall(rf"\b{command}\s*\(([^)]*)\)", _cmake_text())


def _interface_files() -> list[str]:
    return sorted(
        p.relative_to(ROOT).as_posix() for d in ("msg", "srv") for p in (ROOT / d).glob("*.*")
    )


def _interface_packages() -> set[str]:
    """Packages whose messages the interface files use (e.g. geometry_msgs/Point)."""
    text = " ".join((ROOT / f).read_text() for f in _interface_files())
    text = re.sub(r"#[^\n]*", "", text)
    return {pkg for pkg in re.findall(r"\b([a-z][a-z0-9_]*)/[A-Z]\w*", text) if pkg != PACKAGE}


def _params() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "config" / "vlm_ros.yaml").read_text())


def _launch_tree() -> ast.Module:
    return ast.parse((ROOT / "launch" / "vlm_ros.launch.py").read_text())


def _keywords(call: ast.Call) -> dict[str, ast.expr]:
    return {k.arg: k.value for k in call.keywords if k.arg}


def _node_call() -> ast.Call:
    calls = [
        n for n in ast.walk(_launch_tree())
        if isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id == "Node"
    ]
    assert len(calls) == 1, "the launch file starts exactly one Node"
    return calls[0]


# --------------------------------------------------------------------------------------------
# package.xml
# --------------------------------------------------------------------------------------------


def test_package_xml_identity() -> None:
    root = _package_xml()
    assert root.tag == "package" and root.get("format") == "3"
    assert root.findtext("name") == PACKAGE
    from vlm_ros import __version__

    assert root.findtext("version") == __version__
    setup_py = (ROOT / "setup.py").read_text()
    assert f'version="{__version__}"' in setup_py, "setup.py and package.xml versions agree"
    assert root.findtext("license") == "Apache-2.0"
    assert (root.findtext("description") or "").strip()
    maintainer = root.find("maintainer")
    assert maintainer is not None and maintainer.get("email") and (maintainer.text or "").strip()


def test_package_xml_dependencies() -> None:
    root = _package_xml()
    assert REQUIRED_BUILDTOOL <= _tags(root, "buildtool_depend")
    assert REQUIRED_DEPEND <= _tags(root, "depend")
    assert "action_msgs" in _tags(root, "depend"), "action/*.action needs it at build time"
    assert REQUIRED_EXEC <= _tags(root, "exec_depend")
    assert REQUIRED_TEST <= _tags(root, "test_depend")
    assert _tags(root, "member_of_group") == {"rosidl_interface_packages"}
    assert root.findtext("export/build_type") == "ament_cmake"


def test_optional_packages_are_conditional_not_hard_dependencies() -> None:
    root = _package_xml()
    found: dict[str, str | None] = {}
    for tag in DEPENDENCY_TAGS:
        for element in root.findall(tag):
            name = (element.text or "").strip()
            if name in OPTIONAL:
                assert tag == "exec_depend", f"{name} is only a run-time (exec) dependency"
                found[name] = element.get("condition")
    assert set(found) == set(OPTIONAL), "each optional package is declared, conditionally"
    for name, variable in OPTIONAL.items():
        assert found[name] == f"${variable} == 1", name
    # No other dependency carries a condition: the rest are all hard requirements.
    conditional = {(e.text or "").strip() for tag in DEPENDENCY_TAGS
                   for e in root.findall(tag) if e.get("condition")}
    assert conditional == set(OPTIONAL)


def test_package_xml_conditions_select_the_optional_packages() -> None:
    """catkin_pkg (what rosdep and colcon use) evaluates the conditions against the environment."""
    catkin_package = pytest.importorskip("catkin_pkg.package", reason="catkin_pkg not installed")

    def exec_depends(env: dict[str, str]) -> set[str]:
        package = catkin_package.parse_package(str(ROOT / "package.xml"))
        package.evaluate_conditions(env)
        return {d.name for d in package.exec_depends if d.evaluated_condition}

    plain = exec_depends({})
    assert REQUIRED_EXEC <= plain and not plain & set(OPTIONAL)
    assert exec_depends({"VLM_ROS_OPTIONAL": "1"}) - plain == {"tf2_ros", "vision_msgs",
                                                                "cv_bridge"}
    assert exec_depends({"VLM_ROS_GAZEBO": "1"}) - plain == {"ros_gz_sim", "ros_gz_bridge"}


def test_package_xml_passes_catkin_pkg_validation() -> None:
    """catkin_pkg is the parser colcon and rosdep use (present on ROS machines)."""
    catkin_package = pytest.importorskip("catkin_pkg.package", reason="catkin_pkg not installed")
    package = catkin_package.parse_package(str(ROOT / "package.xml"))
    package.validate()
    assert package.get_build_type() == "ament_cmake"


def test_interface_dependencies_are_declared() -> None:
    """Every package an interface uses is a <depend> (build + run) and a rosidl DEPENDENCY."""
    used = _interface_packages()
    assert used >= {"std_msgs", "geometry_msgs", "sensor_msgs"}
    assert used <= _tags(_package_xml(), "depend")
    [generate] = _cmake_calls("rosidl_generate_interfaces")
    dependencies = set(generate.split("DEPENDENCIES", 1)[1].split())
    assert used <= dependencies
    assert dependencies <= _tags(_package_xml(), "depend")


def test_every_cmake_find_package_is_declared() -> None:
    root = _package_xml()
    declared = _tags(root, "buildtool_depend") | _tags(root, "depend") | \
        _tags(root, "build_depend") | _tags(root, "test_depend")  # test_depend: BUILD_TESTING
    found = {call.split()[0] for call in _cmake_calls("find_package")}
    assert found <= declared, f"find_package without package.xml entry: {found - declared}"


# --------------------------------------------------------------------------------------------
# CMakeLists.txt
# --------------------------------------------------------------------------------------------


def test_cmake_basics() -> None:
    text = _cmake_text()
    assert re.search(r"cmake_minimum_required\s*\(\s*VERSION 3\.8\s*\)", text)
    assert re.search(rf"project\s*\(\s*{PACKAGE}\s*\)", text)
    found = {call.split()[0] for call in _cmake_calls("find_package")}
    assert {"ament_cmake", "ament_cmake_python", "rosidl_default_generators", "std_msgs",
            "sensor_msgs", "geometry_msgs", "builtin_interfaces"} <= found
    assert "rosidl_default_runtime" in _cmake_calls("ament_export_dependencies")[0].split()
    assert text.rstrip().endswith("ament_package()"), "ament_package() comes last"


def test_cmake_runs_pytest_under_colcon_test() -> None:
    """`colcon test` runs tests/ with pytest (ament_cmake_pytest), DDS kept on localhost."""
    text = _cmake_text()
    block = re.search(r"if\s*\(\s*BUILD_TESTING\s*\)(.*)endif\s*\(\s*\)", text)
    assert block, "an if(BUILD_TESTING) ... endif() block"
    body = block.group(1)
    assert re.search(r"find_package\s*\(\s*ament_cmake_pytest REQUIRED\s*\)", body)
    call = re.search(r"ament_add_pytest_test\s*\(\s*(\S+)\s+(\S+)(.*?)\)", body)
    assert call and call.group(2).strip('"').rstrip("/").endswith("tests")
    assert "ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST" in body
    assert re.search(r"\bENV\b", call.group(3))
    assert "NOCAPTURE" not in body, "Humble's ament_cmake_pytest has no NOCAPTURE"
    assert block.start() < text.index("ament_package()")


def test_cmake_lists_every_interface_file() -> None:
    listed = set(re.findall(r'"((?:msg|srv)/[^"]+)"', _cmake_text()))
    assert listed == set(_interface_files())
    assert all((ROOT / f).is_file() for f in listed)


def test_cmake_installs_python_after_generation() -> None:
    """The hand-written package lands in the same site-packages folder as the generated
    vlm_ros.msg/.srv, declared after rosidl_generate_interfaces() so our __init__.py wins; a second
    ament_python_install_package(vlm_ros) would clash with the generator's (see CMakeLists.txt)."""
    text = _cmake_text()
    generate = text.index("rosidl_generate_interfaces(")
    python_install = re.search(
        r'install\s*\(\s*DIRECTORY \$\{PROJECT_NAME\}/ DESTINATION "\$\{python_install_dir\}/'
        r'\$\{PROJECT_NAME\}"', text)
    assert python_install and python_install.start() > generate
    assert "ament_get_python_install_dir(python_install_dir)" in text
    assert not _cmake_calls("ament_python_install_package")


def test_cmake_installs_node_launch_and_config() -> None:
    text = _cmake_text()
    assert re.search(r"install\s*\(\s*PROGRAMS scripts/vlm_node DESTINATION lib/\$\{PROJECT_NAME\}",
                     text)
    installed = re.search(r"install\s*\(\s*DIRECTORY ([\w ]+?) DESTINATION share/\$\{PROJECT_NAME\}",
                          text)
    assert installed and {"launch", "config"} <= set(installed.group(1).split())
    assert (ROOT / "launch" / "vlm_ros.launch.py").is_file()
    assert (ROOT / "config" / "vlm_ros.yaml").is_file()


# --------------------------------------------------------------------------------------------
# scripts/vlm_node
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name, module", [("vlm_node", "vlm_ros.ros.node"),
                                          ("vlm_voice", "vlm_ros.ros.voice_node")])
def test_node_script_is_an_executable_entry_for_node_main(name: str, module: str) -> None:
    script = ROOT / "scripts" / name
    assert script.stat().st_mode & stat.S_IXUSR, "install(PROGRAMS) keeps the mode: must be +x"
    text = script.read_text()
    assert text.startswith("#!/usr/bin/env python3\n")
    imports = [
        (n.module, [a.name for a in n.names])
        for n in ast.walk(ast.parse(text)) if isinstance(n, ast.ImportFrom)
    ]
    assert (module, ["main"]) in imports
    assert f"{name}={module}:main" in (ROOT / "setup.py").read_text()
    assert re.search(rf"install\s*\(\s*PROGRAMS scripts/{name} DESTINATION "
                     r"lib/\$\{PROJECT_NAME\}", _cmake_text())


def test_node_main_exists() -> None:
    spec = importlib.util.find_spec("vlm_ros.ros.node")
    assert spec is not None and spec.origin
    tree = ast.parse(Path(spec.origin).read_text())
    assert any(isinstance(n, ast.FunctionDef) and n.name == "main" for n in tree.body)


# --------------------------------------------------------------------------------------------
# config/vlm_ros.yaml
# --------------------------------------------------------------------------------------------


def test_params_file_shape() -> None:
    data = _params()
    assert list(data) == [PARAMS_KEY]
    assert list(data[PARAMS_KEY]) == ["ros__parameters"]
    assert PARAMS_KEY.rsplit("/", 1)[1] == NODE_NAME


def test_params_file_matches_the_nodes_declared_defaults() -> None:
    """The node declares each parameter with a default; the shipped YAML must use the same names
    and the same types (else the override is rejected: ROS parameters are strictly typed, 0.3
    declares a double and 1 an integer) and, being the documented defaults, the same values."""
    params = _params()[PARAMS_KEY]["ros__parameters"]
    assert set(params) == set(PARAMETERS)
    for name, (default, _description) in PARAMETERS.items():
        assert type(params[name]) is type(default), name
        assert params[name] == default, name
    assert all(type(v) is float for v in params["camera_pose_in_base"])


@pytest.mark.ros
@pytest.mark.parametrize("namespace", ["", "/robot1"])
def test_rcl_applies_the_params_file_in_any_namespace(namespace: str) -> None:
    """rcl's own YAML parser reads the file and hands every parameter to a node named vlm_ros,
    also when the launch file puts it in a namespace."""
    rclpy = pytest.importorskip("rclpy")
    from rclpy.node import Node

    context = rclpy.Context()
    params_file = str(ROOT / "config" / "vlm_ros.yaml")
    rclpy.init(args=["--ros-args", "--params-file", params_file], context=context)
    try:
        node = Node(NODE_NAME, namespace=namespace, context=context,
                    automatically_declare_parameters_from_overrides=True)
        try:
            expected = _params()[PARAMS_KEY]["ros__parameters"]
            for name, value in expected.items():
                assert node.has_parameter(name), name
                assert node.get_parameter(name).value == value, name
        finally:
            node.destroy_node()
    finally:
        rclpy.shutdown(context=context)


# --------------------------------------------------------------------------------------------
# launch/vlm_ros.launch.py
# --------------------------------------------------------------------------------------------


def test_launch_file_compiles_and_defines_generate_launch_description() -> None:
    source = (ROOT / "launch" / "vlm_ros.launch.py").read_text()
    compile(source, "vlm_ros.launch.py", "exec")
    functions = {n.name for n in _launch_tree().body if isinstance(n, ast.FunctionDef)}
    assert "generate_launch_description" in functions


def test_launch_starts_the_installed_node_with_params_and_remappings() -> None:
    keywords = _keywords(_node_call())
    assert ast.literal_eval(keywords["package"]) == PACKAGE
    assert ast.literal_eval(keywords["executable"]) == "vlm_node"
    assert ast.literal_eval(keywords["name"]) == NODE_NAME
    assert {"parameters", "remappings", "namespace", "ros_arguments"} <= set(keywords)
    remappings = keywords["remappings"]
    assert isinstance(remappings, ast.List)
    remapped = {ast.literal_eval(pair.elts[0]) for pair in remappings.elts}  # type: ignore
    assert remapped == NODE_INPUT_TOPICS
    assert "LaunchConfiguration('params_file')" in ast.unparse(keywords["parameters"])
    launch_source = ast.unparse(_launch_tree())
    assert "'use_sim_time': LaunchConfiguration('use_sim_time')" in launch_source
    assert "FindPackageShare('vlm_ros'), 'config', 'vlm_ros.yaml'" in launch_source


def test_launch_declares_every_argument() -> None:
    """The arguments table is the launch file's interface; read it without importing launch."""
    tree = _launch_tree()
    table = next(
        n for n in tree.body
        if isinstance(n, ast.AnnAssign) and getattr(n.target, "id", "") == "LAUNCH_ARGUMENTS"
    )
    assert isinstance(table.value, ast.Tuple)
    names = {ast.literal_eval(row.elts[0]) for row in table.value.elts}  # type: ignore
    assert names == LAUNCH_ARGUMENTS


def test_launch_description_builds() -> None:
    """With ROS's launch and launch_ros importable, build the description for real."""
    pytest.importorskip("launch", reason="ROS 'launch' is not installed (no PyPI wheel)")
    pytest.importorskip("launch_ros", reason="ROS 'launch_ros' is not installed (no PyPI wheel)")
    from launch.actions import DeclareLaunchArgument, OpaqueFunction

    spec = importlib.util.spec_from_file_location("vlm_ros_launch", ROOT / "launch" /
                                                  "vlm_ros.launch.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    description = module.generate_launch_description()
    declared = {a.name for a in description.entities if isinstance(a, DeclareLaunchArgument)}
    assert declared == LAUNCH_ARGUMENTS
    assert any(isinstance(a, OpaqueFunction) for a in description.entities)


# --------------------------------------------------------------------------------------------
# A real ament_cmake build, where a ROS development environment is present
# --------------------------------------------------------------------------------------------


# scripts/build_ros_package.sh's output (scripts/test.sh --latest builds into build/ros-latest).
INSTALL = Path(os.environ.get("VLM_ROS_BUILD_DIR", ROOT / "build" / "ros")) / "install"


def test_ament_cmake_build_installs_interfaces_node_and_python() -> None:
    """The install tree scripts/build_ros_package.sh made (ament_cmake + rosidl, as colcon
    builds it; scripts/test.sh runs it before the tests): the layout `ros2 run`, `ros2 launch`
    and `import vlm_ros.msg` rely on."""
    if not INSTALL.is_dir():
        if os.environ.get("VLM_ROS_REQUIRE_INTERFACES") == "1":
            pytest.fail(f"{INSTALL} is missing: scripts/build_ros_package.sh did not run")
        pytest.skip("the package is not built here: run scripts/build_ros_package.sh")
    install = INSTALL
    node = install / "lib" / PACKAGE / "vlm_node"
    assert node.is_file() and os.access(node, os.X_OK)
    share = install / "share" / PACKAGE
    assert (share / "launch" / "vlm_ros.launch.py").is_file()
    assert (share / "config" / "vlm_ros.yaml").is_file()
    assert (share / "package.xml").is_file()
    assert (install / "share" / "ament_index" / "resource_index" / "packages" / PACKAGE).is_file()
    [site] = list(install.glob(f"lib/python3*/site-packages/{PACKAGE}"))
    # Ours, not the generator's empty __init__.py.
    assert (site / "__init__.py").read_text() == (ROOT / PACKAGE / "__init__.py").read_text()
    assert (site / "ros" / "node.py").is_file() and (site / "core" / "types.py").is_file()
    assert (site / "msg" / "_grounding_result.py").is_file()
    assert (site / "msg" / "_grounded_target.py").is_file()
    assert (site / "srv" / "_ground.py").is_file()
    assert (site / "action" / "_instruct.py").is_file()


def test_colcon_test_registers_the_pytest_suite(tmp_path: Path) -> None:
    """Configure the package with BUILD_TESTING=ON as `colcon test` would (the wheels of
    ament_cmake_pytest, as scripts/build_ros_package.sh builds): ctest lists the pytest suite,
    run with DDS discovery kept on localhost."""
    prefix = Path(sys.prefix)
    if not (prefix / "share" / "ament_cmake_pytest" / "cmake").is_dir():
        if os.environ.get("VLM_ROS_REQUIRE_INTERFACES") == "1":
            pytest.fail("ament_cmake_pytest is missing (the ros-build extra installs it)")
        pytest.skip("ament_cmake_pytest is not installed (the ros-build extra)")
    source = tmp_path / "src"
    source.mkdir()
    for name in ("CMakeLists.txt", "package.xml", "msg", "srv", "action", "launch", "config",
                 "worlds", "vlm_ros", "tests", "scripts"):
        target = source / name
        (shutil.copytree if (ROOT / name).is_dir() else shutil.copy2)(ROOT / name, target)
    env = {**os.environ, "AMENT_PREFIX_PATH": str(prefix)}
    configure = subprocess.run(
        ["cmake", "-S", str(source), "-B", str(tmp_path / "build"), f"-DCMAKE_PREFIX_PATH={prefix}",
         f"-DPython3_EXECUTABLE={sys.executable}", "-DBUILD_TESTING=ON",
         f"-DCMAKE_PROJECT_INCLUDE={ROOT / 'scripts' / 'wheel_include_dirs.cmake'}"],
        capture_output=True, text=True, timeout=300, env=env)
    assert configure.returncode == 0, configure.stdout[-2000:] + configure.stderr[-2000:]
    listed = subprocess.run(["ctest", "-N"], cwd=tmp_path / "build", capture_output=True,
                            text=True, timeout=60)
    assert "Test #1: vlm_ros_pytest" in listed.stdout
    command = (tmp_path / "build" / "CTestTestfile.cmake").read_text()
    assert '"ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST"' in command
    assert f'"-m" "pytest" "{source / "tests"}"' in command
