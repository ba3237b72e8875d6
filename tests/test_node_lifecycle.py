"""The managed (lifecycle) node over DDS, driven as a lifecycle manager drives it: ChangeState
and GetState on /vlm_ros/change_state and /vlm_ros/get_state from a second node."""

from __future__ import annotations

import time

import pytest
from ros_harness import RosGraph, call

from vlm_ros import scenes

pytestmark = pytest.mark.ros  # the node over DDS

from lifecycle_msgs.msg import Transition  # noqa: E402 - after the harness' importorskip
from lifecycle_msgs.srv import ChangeState, GetState  # noqa: E402

CAMERA = ["-p", "camera_pose_in_base:=[0.0, 0.0, 1.0, 0.0, 0.0, 0.0]",
          "-p", "image_reliability:=reliable", "-p", "follow_rate_hz:=0.0",
          "-p", "publish_debug_image:=false"]


def _change(graph: RosGraph, transition: int) -> bool:
    request = ChangeState.Request()
    request.transition.id = transition
    return bool(call(graph.client, ChangeState, "/vlm_ros/change_state", request).success)


def _state(graph: RosGraph) -> str:
    return str(call(graph.client, GetState, "/vlm_ros/get_state", GetState.Request())
               .current_state.label)


def test_configure_activate_deactivate_cleanup_shutdown() -> None:
    graph = RosGraph([*CAMERA, "-p", "autostart:=false"], ready=False)
    try:
        assert _state(graph) == "unconfigured"
        assert graph.client.publisher.get_subscription_count() == 0  # no ~/command yet

        assert _change(graph, Transition.TRANSITION_CONFIGURE)
        assert _state(graph) == "inactive"
        assert _change(graph, Transition.TRANSITION_ACTIVATE)
        assert _state(graph) == "active"
        graph.wait_until_linked()  # camera frames arrive only now
        graph.show(*scenes.coffee())
        grasps = graph.listener.count("grasp_pose")
        active = graph.say("grab the red cup")
        assert active["status"] == "ok", active
        assert graph.wait_for("grasp_pose", grasps + 1)

        stops = graph.listener.count("stop")
        assert _change(graph, Transition.TRANSITION_DEACTIVATE)
        assert _state(graph) == "inactive"
        assert graph.wait_for("stop", stops + 1)  # deactivating cancels like a stop
        grasps = graph.listener.count("grasp_pose")
        inactive = graph.say("grab the red cup")
        assert inactive["status"] == "rejected" and inactive["goals"] == [], inactive
        assert inactive["message"].startswith("inactive"), inactive
        time.sleep(1.0)
        assert graph.listener.count("grasp_pose") == grasps
        assert graph.camera.image_pub.get_subscription_count() == 0  # camera input closed

        assert _change(graph, Transition.TRANSITION_ACTIVATE)  # and back: it acts again
        again = graph.say("grab the red cup")
        assert again["status"] == "ok", again
        assert _change(graph, Transition.TRANSITION_DEACTIVATE)

        assert _change(graph, Transition.TRANSITION_CLEANUP)
        assert _state(graph) == "unconfigured"
        assert _change(graph, Transition.TRANSITION_CONFIGURE)  # the backend loads again
        assert _state(graph) == "inactive"
        assert _change(graph, Transition.TRANSITION_INACTIVE_SHUTDOWN)
        assert _state(graph) == "finalized"
        assert graph.alive()
    finally:
        graph.close()


def test_a_backend_that_cannot_load_fails_configure_and_the_node_stays() -> None:
    graph = RosGraph([*CAMERA, "-p", "autostart:=false", "-p", "backend:=no_such"],
                     ready=False)
    try:
        assert not _change(graph, Transition.TRANSITION_CONFIGURE)
        assert _state(graph) == "unconfigured"
        assert graph.alive()
        assert not _change(graph, Transition.TRANSITION_CONFIGURE)  # still serving
        assert _state(graph) == "unconfigured"
        deadline = time.monotonic() + 5.0
        while time.monotonic() < deadline and "unknown backend 'no_such'" not in graph.node.tail():
            time.sleep(0.1)
        assert "configure failed: unknown backend 'no_such'" in graph.node.tail()
        assert _change(graph, Transition.TRANSITION_UNCONFIGURED_SHUTDOWN)
        assert _state(graph) == "finalized"
    finally:
        graph.close()


def test_autostart_comes_up_active() -> None:
    graph = RosGraph(CAMERA)  # waits until the node reads commands and camera frames
    try:
        assert _state(graph) == "active"
        graph.show(*scenes.coffee())
        assert graph.say("grab the red cup")["status"] == "ok"
    finally:
        graph.close()
