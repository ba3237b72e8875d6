"""The README documents the interface the code actually has."""

from __future__ import annotations

import json
import re
from pathlib import Path

from vlm_ros.ros.params import PARAMETER_SPECS, PARAMETERS, range_text

README = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")


def test_every_parameter_is_documented_with_its_default() -> None:
    for name, (default, _description) in PARAMETERS.items():
        row = re.search(rf"^\| `{re.escape(name)}` \| `([^`]*)` \|", README, re.MULTILINE)
        assert row, f"parameter {name} missing from the README table"
        assert json.loads(row.group(1)) == default, name


def test_the_parameter_table_says_which_are_read_only_and_their_ranges() -> None:
    for name, spec in PARAMETER_SPECS.items():
        row = re.search(rf"^\| `{re.escape(name)}` \| `[^`]*` \| ([a-z-]+) \| ([^|]*) \|", README,
                        re.MULTILINE)
        assert row, f"parameter {name}: no read-only / range columns in the README table"
        assert row.group(1) == ("read-only" if spec.read_only else "live"), name
        assert row.group(2).strip() == (range_text(spec.range) if spec.range else ""), name


def test_every_topic_the_node_uses_is_documented() -> None:
    ros = Path(__file__).resolve().parents[1] / "vlm_ros" / "ros"
    node_source = "".join((ros / name).read_text() for name in ("node.py", "outputs.py"))
    topics = set(re.findall(r'"(~/[a-z_]+|camera/[a-z_/]+|goal_pose)"', node_source))
    assert topics, "no topics found in node.py / outputs.py"
    for topic in topics:
        assert f"`{topic}`" in README or topic in README, f"{topic} missing from the README"


def test_readme_has_exactly_the_two_setup_commands() -> None:
    block = README.split("## Quick start", 1)[1].split("```", 2)[1]
    commands = [line.split("#")[0].strip() for line in block.splitlines()[1:] if line.strip()]
    assert commands == ["bash scripts/demo.sh", "bash scripts/test.sh"]
