"""One source for Humble, Jazzy, Kilted and Rolling (docs/ros_distros.md).

Only Kilted's rclpy (PyPI wheels) can run here.  So: every rclpy name the code imports must be on
an allowlist that was checked against the humble, jazzy, kilted and rolling sources of rclpy
(a future import of a moved or newer-only API fails here, not on a user's Humble machine);
newer-only keywords and methods stay out of the code; the compat layer resolves to the Kilted
names here and to the Humble names where ``rclpy.event_handler`` does not exist; and every file
parses with Python 3.10's grammar (Humble's Python).
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
COMPAT = ROOT / "vlm_ros" / "ros" / "compat.py"
# compat.py imports the moved modules by design; this file names them to test compat.
EXEMPT = {COMPAT, Path(__file__).resolve()}

# The audit's result: (module, name) pairs that exist, with the signatures we use, in rclpy's
# humble (3.3), jazzy (7.1), kilted (9.1) and rolling sources.  Lifecycle and action names are
# listed for the lifecycle node and action server to come.  Anything not here goes through
# vlm_ros/ros/compat.py, or is checked against the four branches and then added here.
RCLPY_ALLOWLIST: dict[str, set[str]] = {
    "rclpy": {"Context", "init", "ok", "shutdown", "spin", "spin_once",
              "spin_until_future_complete", "get_global_executor", "create_node", "logging"},
    "rclpy.action": {"ActionServer", "ActionClient", "CancelResponse", "GoalResponse"},
    "rclpy.action.server": {"ActionServer", "ServerGoalHandle", "CancelResponse", "GoalResponse"},
    "rclpy.action.client": {"ActionClient", "ClientGoalHandle"},
    "rclpy.callback_groups": {"CallbackGroup", "MutuallyExclusiveCallbackGroup",
                              "ReentrantCallbackGroup"},
    "rclpy.client": {"Client"},
    "rclpy.clock": {"Clock", "ClockType", "ROSClock"},
    "rclpy.context": {"Context"},
    "rclpy.duration": {"Duration"},
    "rclpy.exceptions": {"ParameterNotDeclaredException", "InvalidParameterValueException",
                         "ParameterAlreadyDeclaredException", "InvalidParameterTypeException",
                         "ParameterImmutableException", "ParameterException"},
    "rclpy.executors": {"Executor", "ExternalShutdownException", "MultiThreadedExecutor",
                        "SingleThreadedExecutor", "ShutdownException", "TimeoutException"},
    "rclpy.lifecycle": {"LifecycleNode", "LifecycleNodeMixin", "LifecycleState", "State",
                        "TransitionCallbackReturn", "LifecyclePublisher", "Publisher", "Node"},
    "rclpy.logging": {"get_logger", "LoggingSeverity", "set_logger_level"},
    "rclpy.node": {"Node"},
    "rclpy.parameter": {"Parameter", "parameter_value_to_python"},
    "rclpy.publisher": {"Publisher"},
    "rclpy.qos": {"QoSProfile", "QoSPresetProfiles", "DurabilityPolicy", "HistoryPolicy",
                  "ReliabilityPolicy", "LivelinessPolicy", "qos_profile_sensor_data",
                  "qos_profile_system_default", "qos_profile_services_default",
                  "qos_profile_parameters"},
    "rclpy.service": {"Service"},
    "rclpy.signals": {"SignalHandlerOptions", "uninstall_signal_handlers"},
    "rclpy.subscription": {"Subscription"},
    "rclpy.task": {"Future"},
    "rclpy.time": {"Time"},
    "rclpy.timer": {"Timer", "Rate"},
    "rclpy.utilities": {"get_rmw_implementation_identifier", "remove_ros_args"},
    "rclpy.wait_for_message": {"wait_for_message"},
}
# Modules that exist in only some distros: imported by compat.py alone.
MOVED_MODULES = {"rclpy.event_handler", "rclpy.qos_event", "rclpy.experimental",
                 "rclpy.clock_type", "rclpy.type_hash",
                 "rclpy.service_introspection", "rclpy.logging_service",
                 "rclpy.parameter_client", "rclpy.parameter_event_handler"}

# Methods and keywords that are newer than Humble (the distro that added them); compat.py is
# where a fallback would go.
NEWER_METHODS = {
    "get_publisher_count": "Iron (Subscription); use compat.publisher_count",
    "add_pre_set_parameters_callback": "Iron; use add_on_set_parameters_callback",
    "add_post_set_parameters_callback": "Iron; use add_on_set_parameters_callback",
}
NEWER_KEYWORDS = {
    "autostart": "Jazzy (create_timer)",
    "enable_logger_service": "Jazzy (Node)",
    "rosout_qos_profile": "Kilted (Node)",
    "content_filter_options": "Kilted (create_subscription)",
    "matched": "Iron (Publisher/SubscriptionEventCallbacks)",
    "incompatible_type": "Iron (Publisher/SubscriptionEventCallbacks)",
}


def _python_files() -> list[Path]:
    files = [p for d in ("vlm_ros", "scripts", "launch", "tests") for p in (ROOT / d).rglob("*.py")]
    files += [ROOT / "scripts" / "vlm_node", ROOT / "scripts" / "vlm_voice"]
    return sorted(p for p in files if "__pycache__" not in p.parts)


def _trees() -> dict[Path, ast.Module]:
    return {p: ast.parse(p.read_text(encoding="utf-8"), filename=str(p)) for p in _python_files()}


def _rclpy_uses(tree: ast.Module) -> list[tuple[str, str | None, int]]:
    """(module, name, line) for each ``from rclpy.x import name``, ``import rclpy.x`` and
    ``rclpy.name`` attribute."""
    uses: list[tuple[str, str | None, int]] = []
    for n in ast.walk(tree):
        if isinstance(n, ast.ImportFrom) and n.module and n.module.split(".")[0] == "rclpy":
            uses += [(n.module, a.name, n.lineno) for a in n.names]
        elif isinstance(n, ast.Import):
            uses += [(a.name, None, n.lineno) for a in n.names if a.name.split(".")[0] == "rclpy"]
        elif (isinstance(n, ast.Attribute) and isinstance(n.value, ast.Name)
              and n.value.id == "rclpy"):
            uses.append(("rclpy", n.attr, n.lineno))
    return uses


# --------------------------------------------------------------------------------------------
# Static: what the code may take from rclpy
# --------------------------------------------------------------------------------------------


def test_every_rclpy_import_is_on_the_four_distro_allowlist() -> None:
    outside: list[str] = []
    seen = 0
    for path, tree in _trees().items():
        if path in EXEMPT:
            continue
        for module, name, line in _rclpy_uses(tree):
            seen += 1
            if module not in RCLPY_ALLOWLIST or (name is not None
                                                 and name not in RCLPY_ALLOWLIST[module]):
                outside.append(f"{path.relative_to(ROOT)}:{line}: {module} {name or ''}")
    assert seen > 50, "the scan found the package's rclpy imports"
    assert not outside, ("rclpy API not checked against humble/jazzy/kilted/rolling; route it "
                         "through vlm_ros/ros/compat.py or audit it (docs/ros_distros.md):\n"
                         + "\n".join(outside))


def test_only_compat_imports_modules_that_moved_between_distros() -> None:
    offenders = [f"{p.relative_to(ROOT)}:{line}: {module}"
                 for p, tree in _trees().items() if p not in EXEMPT
                 for module, _name, line in _rclpy_uses(tree) if module in MOVED_MODULES]
    assert not offenders, offenders
    compat_modules = {module for module, _n, _l in _rclpy_uses(ast.parse(COMPAT.read_text()))}
    assert compat_modules == {"rclpy.event_handler", "rclpy.qos_event"}


def test_no_newer_than_humble_methods_or_keywords_outside_compat() -> None:
    offenders: list[str] = []
    for path, tree in _trees().items():
        if path in EXEMPT:
            continue
        for n in ast.walk(tree):
            if not isinstance(n, ast.Call):
                continue
            if isinstance(n.func, ast.Attribute) and n.func.attr in NEWER_METHODS:
                offenders.append(f"{path.relative_to(ROOT)}:{n.lineno}: .{n.func.attr}() is "
                                 f"{NEWER_METHODS[n.func.attr]}")
            offenders += [f"{path.relative_to(ROOT)}:{n.lineno}: {k.arg}= is "
                          f"{NEWER_KEYWORDS[k.arg]}"
                          for k in n.keywords if k.arg in NEWER_KEYWORDS]
    assert not offenders, "\n".join(offenders)


def test_qos_profiles_are_built_with_keywords_only() -> None:
    """Humble's and Jazzy's QoSProfile(**kwargs) takes no positional arguments (Kilted's does)."""
    calls = [(p, n) for p, tree in _trees().items() for n in ast.walk(tree)
             if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)
             and n.func.id == "QoSProfile"]
    assert len(calls) > 10
    positional = [f"{p.relative_to(ROOT)}:{n.lineno}" for p, n in calls if n.args]
    assert not positional, positional


def test_rclpy_init_is_not_used_as_a_context_manager() -> None:
    """``with rclpy.init():`` works from Kilted/Rolling on; Humble and Jazzy return None."""
    offenders = [f"{p.relative_to(ROOT)}:{item.lineno}"
                 for p, tree in _trees().items() for n in ast.walk(tree)
                 if isinstance(n, ast.With) for item in [n]
                 for w in n.items if isinstance(w.context_expr, ast.Call)
                 and ast.unparse(w.context_expr.func) == "rclpy.init"]
    assert not offenders, offenders


def test_the_allowlist_holds_on_the_installed_rclpy() -> None:
    """Each allowlisted name imports here (Kilted), so the list itself has no typo."""
    pytest.importorskip("rclpy")
    missing = [f"{module}.{name}" for module, names in RCLPY_ALLOWLIST.items()
               for name in sorted(names)
               if not hasattr(importlib.import_module(module), name)
               and importlib.util.find_spec(f"{module}.{name}") is None]
    assert not missing, missing


# --------------------------------------------------------------------------------------------
# The compat layer with either API
# --------------------------------------------------------------------------------------------


def _run(code: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run(["timeout", "-s", "KILL", "60", sys.executable, "-c",
                           textwrap.dedent(code)],
                          capture_output=True, text=True, cwd=ROOT, env=env, timeout=90)


def test_compat_resolves_to_the_iron_and_later_names_here() -> None:
    pytest.importorskip("rclpy")
    import rclpy.event_handler

    from vlm_ros.ros import compat

    assert compat.EVENT_HANDLER_MODULE == "rclpy.event_handler"
    assert compat.HUMBLE_API is False
    assert compat.PublisherEventCallbacks is rclpy.event_handler.PublisherEventCallbacks
    assert compat.SubscriptionEventCallbacks is rclpy.event_handler.SubscriptionEventCallbacks


# Humble's rclpy cannot be installed here, so its rclpy.qos_event is played by a stub with
# Humble's signatures (rclpy 3.3: no matched/incompatible_type), and rclpy.event_handler (Iron and
# later) is made unimportable.  This is the one stand-in: it plays the distro, not compat.
_HUMBLE_RCLPY = '''
import importlib.abc, importlib.machinery, sys, types, warnings
warnings.simplefilter("error")  # Jazzy+'s deprecated rclpy.qos_event shim must not be reached

class HumbleRclpy(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "rclpy.event_handler":
            raise ModuleNotFoundError("No module named 'rclpy.event_handler'", name=name)
        if name == "rclpy.qos_event":
            return importlib.machinery.ModuleSpec(name, self)
        return None

    def create_module(self, spec):
        module = types.ModuleType(spec.name)

        class PublisherEventCallbacks:
            def __init__(self, *, deadline=None, liveliness=None, incompatible_qos=None,
                         use_default_callbacks=True):
                self.use_default_callbacks = use_default_callbacks

        class SubscriptionEventCallbacks:
            def __init__(self, *, deadline=None, incompatible_qos=None, liveliness=None,
                         message_lost=None, use_default_callbacks=True):
                self.use_default_callbacks = use_default_callbacks

        for cls in (PublisherEventCallbacks, SubscriptionEventCallbacks):
            cls.__module__ = spec.name
            setattr(module, cls.__name__, cls)
        return module

    def exec_module(self, module):
        pass

sys.meta_path.insert(0, HumbleRclpy())
'''


def test_compat_resolves_to_the_humble_names_where_event_handler_is_missing() -> None:
    pytest.importorskip("rclpy")
    run = _run(_HUMBLE_RCLPY + '''
from vlm_ros.ros import compat
import rclpy.qos_event
assert compat.PublisherEventCallbacks is rclpy.qos_event.PublisherEventCallbacks
assert compat.SubscriptionEventCallbacks is rclpy.qos_event.SubscriptionEventCallbacks
assert compat.EVENT_HANDLER_MODULE == "rclpy.qos_event" and compat.HUMBLE_API is True
# outputs.py's call, with Humble's signature:
assert compat.PublisherEventCallbacks(use_default_callbacks=False).use_default_callbacks is False
# (Kilted's own rclpy.node imports rclpy.event_handler, so outputs.py itself cannot be imported
# in this half-Humble rclpy; the static tests above keep it importing these names from compat.)
assert "rclpy.event_handler" not in sys.modules
print("humble names")
''')
    assert run.returncode == 0, run.stdout + run.stderr
    assert run.stdout.strip().endswith("humble names")


def test_publisher_count_matches_the_graph_with_and_without_get_publisher_count() -> None:
    """Kilted's Subscription.get_publisher_count() and Humble's graph query agree, and with the
    method removed from the class (Humble's Subscription has none) compat still counts."""
    pytest.importorskip("rclpy")
    run = _run('''
import time
import rclpy
from rclpy.subscription import Subscription
from std_msgs.msg import String
from vlm_ros.ros.compat import graph_publisher_count, publisher_count

rclpy.init()
node = rclpy.create_node("vlm_ros_compat_probe")
sub = node.create_subscription(String, "compat_probe", lambda msg: None, 10)
before = (publisher_count(node, sub), graph_publisher_count(node, sub))
pubs = [node.create_publisher(String, "compat_probe", 10) for _ in range(2)]
deadline = time.monotonic() + 20
while time.monotonic() < deadline and sub.get_publisher_count() < 2:
    time.sleep(0.05)
kilted = (sub.get_publisher_count(), publisher_count(node, sub), graph_publisher_count(node, sub))
del Subscription.get_publisher_count  # Humble's Subscription
assert not hasattr(sub, "get_publisher_count")
humble = publisher_count(node, sub)
node.destroy_node()
rclpy.shutdown()
print(before, kilted, humble)
''')
    assert run.returncode == 0, run.stdout + run.stderr
    assert run.stdout.split("\n")[-2] == "(0, 0) (2, 2, 2) 2", run.stdout


# --------------------------------------------------------------------------------------------
# Python 3.10 (Humble)
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", _python_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_parses_with_python_3_10_grammar(path: Path) -> None:
    ast.parse(path.read_text(encoding="utf-8"), filename=str(path), feature_version=(3, 10))


def test_compiles_with_a_real_python_3_10_when_present() -> None:
    """Where a Python 3.10 is at hand (a Humble machine, $PYTHON310), byte-compile everything."""
    candidates = [os.environ.get("PYTHON310", ""), shutil.which("python3.10") or ""]
    python310 = next((c for c in candidates if c and subprocess.run(
        [c, "-c", "import sys; assert sys.version_info[:2] == (3, 10)"],
        capture_output=True, timeout=30).returncode == 0), None)
    if python310 is None:
        pytest.skip("no working python3.10 ($PYTHON310 or on PATH)")
    code = ("import sys; [compile(open(p, encoding='utf-8').read(), p, 'exec') "
            "for p in sys.argv[1:]]; print(sys.version_info[:2])")
    run = subprocess.run([python310, "-c", code, *map(str, _python_files())],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.stdout.strip() == "(3, 10)"


# --------------------------------------------------------------------------------------------
# pip-only dependencies for rosdep users (requirements/*.txt) agree with setup.py
# --------------------------------------------------------------------------------------------

# setup.py requirements that rosdep provides (package.xml exec_depend keys) instead of pip.
ROSDEP_KEYS = {"numpy": "python3-numpy", "opencv-python-headless": "python3-opencv",
               "pyyaml": "python3-yaml"}


def _setup_requirements() -> dict[str, list[str]]:
    tree = ast.parse((ROOT / "setup.py").read_text())
    call = next(n for n in ast.walk(tree) if isinstance(n, ast.Call)
                and isinstance(n.func, ast.Name) and n.func.id == "setup")
    kw = {k.arg: ast.literal_eval(k.value) for k in call.keywords
          if k.arg in ("install_requires", "extras_require")}
    return {"": kw["install_requires"], **kw["extras_require"]}


def _requirements_file(name: str) -> list[str]:
    lines = (ROOT / "requirements" / name).read_text().splitlines()
    return [ln.split("#", 1)[0].strip() for ln in lines if ln.split("#", 1)[0].strip()]


def _project(requirement: str) -> str:
    return requirement.split(";")[0].split("[")[0].split("=")[0].split(">")[0].split("<")[0] \
        .strip().lower()


def test_requirements_ros_is_setup_py_minus_what_rosdep_provides() -> None:
    import xml.etree.ElementTree as ET

    setup = _setup_requirements()
    exec_depends = {(e.text or "").strip()
                    for e in ET.parse(ROOT / "package.xml").getroot().findall("exec_depend")}
    assert set(ROSDEP_KEYS.values()) <= exec_depends
    pip_only = [r for r in setup[""] if _project(r) not in ROSDEP_KEYS]
    assert {_project(r) for r in setup[""]} - {_project(r) for r in pip_only} == set(ROSDEP_KEYS)
    assert _requirements_file("ros.txt") == pip_only + setup["models"]


@pytest.mark.parametrize("extra", ["vlm", "voice"])
def test_optional_requirements_match_the_setup_py_extra(extra: str) -> None:
    assert _requirements_file(f"ros-{extra}.txt") == _setup_requirements()[extra]
