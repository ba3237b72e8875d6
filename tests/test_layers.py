"""Dependencies point one way: core <- backends <- ros <- cli / sim / tools.

Static proof from the import statements (nothing is imported to check it): the ROS-free core
imports no adapter, no ROS shell and no rclpy; adapters import no ROS.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from vlm_ros.backends.base import Backend as BackendBase
from vlm_ros.backends.ssd_coco import SsdCocoBackend
from vlm_ros.core.backend import Backend

PACKAGE = Path(__file__).resolve().parents[1] / "vlm_ros"
OUTER = ("vlm_ros.ros", "vlm_ros.sim", "vlm_ros.tools", "vlm_ros.cli", "vlm_ros.voice",
         "vlm_ros.agent", "vlm_ros.console", "rclpy")


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def _offending(layer: str, forbidden: tuple[str, ...]) -> dict[str, set[str]]:
    found = {}
    for path in sorted((PACKAGE / layer).glob("*.py")):
        bad = {name for name in _imports(path)
               if any(name == f or name.startswith(f + ".") for f in forbidden)}
        if bad:
            found[path.name] = bad
    return found


def test_the_core_imports_no_adapter_no_ros_shell_and_no_rclpy() -> None:
    assert _offending("core", ("vlm_ros.backends", *OUTER)) == {}


@pytest.mark.parametrize("layer", ["backends"])
def test_adapters_import_no_ros(layer: str) -> None:
    assert _offending(layer, OUTER) == {}


def test_the_agents_policy_and_provenance_are_ros_free() -> None:
    """The MCP server's rules (what an agent may move, what counts as model output) are plain
    Python: read and tested without rclpy or the MCP SDK."""
    for name in ("policy.py", "provenance.py"):
        imports = _imports(PACKAGE / "agent" / name)
        assert not {i for i in imports if i.split(".")[0] in ("rclpy", "mcp")
                    or i.startswith(("vlm_ros.ros", "vlm_ros.agent.bridge"))}, (name, imports)


def test_the_adapters_base_class_meets_the_cores_contract() -> None:
    assert isinstance(SsdCocoBackend(), Backend)
    assert issubclass(SsdCocoBackend, BackendBase)
