#!/usr/bin/env python3
"""Compare what is installed in this interpreter with requirements/constraints.txt, the lock.

The lock is universal (environment markers for Python 3.10+ and every platform); only the lines
whose markers hold here count.  A difference is a package installed here that the lock does not
list (it was installed by hand, or the lock is stale) or one whose version differs (a local
label such as torch's ``+cpu`` is ignored: the lock pins the public version).

    python scripts/lock_check.py            # exit 1 and one line a difference, 0 when equal
    python scripts/lock_check.py --list     # every difference, also the newer-than-lock ones

tests/test_constraints.py runs the same check on the test venv; scripts/test.sh --latest
prints it to say what the canary ran that the lock does not have.
"""

from __future__ import annotations

import argparse
import fnmatch
import importlib.metadata
import sys
from dataclasses import dataclass
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parent.parent
LOCK = ROOT / "requirements" / "constraints.txt"
# This checkout itself (pip install -e .) is not a dependency of itself.
PROJECT = canonicalize_name("vlm_ros")
# scripts/bootstrap.sh writes this into a venv whose torch was installed before it (a GPU build):
# the names there (fnmatch patterns) are the venv's own choice, not the lock's.
UNLOCKED_FILE = "vlm_ros-unlocked.txt"


@dataclass(frozen=True)
class Difference:
    name: str
    installed: str
    locked: str | None  # None: the lock does not list it

    def __str__(self) -> str:
        if self.locked is None:
            return f"{self.name}=={self.installed} is installed but not in the lock"
        return f"{self.name}=={self.installed} is installed; the lock has {self.locked}"


def locked_versions(lock: Path = LOCK, environment: dict[str, str] | None = None) -> dict[str, str]:
    """name -> version of every lock line whose environment marker holds here (or in
    ``environment``: marker variables that replace this interpreter's, e.g. python_version)."""
    versions: dict[str, str] = {}
    for raw in lock.read_text().splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line or line.startswith("-"):
            continue
        requirement = Requirement(line)
        if requirement.marker is not None and not requirement.marker.evaluate(environment):
            continue
        (spec,) = requirement.specifier  # the lock pins each line with exactly one ==
        if spec.operator != "==":
            raise ValueError(f"{lock}: {line!r} is not an exact pin")
        versions[canonicalize_name(requirement.name)] = spec.version
    return versions


def installed_versions() -> dict[str, str]:
    """name -> version of every distribution an installer put on this interpreter's path.

    Only those with an INSTALLER record count: the ROS wheels carry the egg-info of the packages
    they were built from (rclpy, std_msgs ...) as plain files, which are no installation.
    """
    found: dict[str, str] = {}
    for dist in importlib.metadata.distributions():
        name = dist.metadata["Name"]
        if name and dist.read_text("INSTALLER") is not None:
            found.setdefault(canonicalize_name(name), dist.version)
    return found


def unlocked_patterns(prefix: Path = Path(sys.prefix)) -> list[str]:
    path = prefix / UNLOCKED_FILE
    return path.read_text().split() if path.is_file() else []


def differences(
    locked: dict[str, str], installed: dict[str, str], unlocked: list[str] = ()
) -> list[Difference]:
    found = []
    for name, version in sorted(installed.items()):
        if name == PROJECT or any(fnmatch.fnmatch(name, pattern) for pattern in unlocked):
            continue
        pinned = locked.get(name)
        if pinned is None or Version(version).public != Version(pinned).public:
            found.append(Difference(name, version, pinned))
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lock", type=Path, default=LOCK)
    parser.add_argument("--list", action="store_true",
                        help="print every difference and exit 0 (the drift canary's report)")
    args = parser.parse_args(argv)
    found = differences(locked_versions(args.lock), installed_versions(), unlocked_patterns())
    for difference in found:
        print(difference)
    if not found:
        print(f"lock_check: every installed package is the lock's version ({args.lock.name})")
    return 0 if args.list or not found else 1


if __name__ == "__main__":
    sys.exit(main())
