"""Start the vlm_ros grounding node with its parameters file and camera topic remappings.

    ros2 launch vlm_ros vlm_ros.launch.py
    ros2 launch vlm_ros vlm_ros.launch.py image_topic:=/camera/color/image_raw \
        depth_topic:=/camera/aligned_depth_to_color/image_raw \
        camera_info_topic:=/camera/color/camera_info backend:=owl namespace:=robot1

The node subscribes the relative names camera/image, camera/image/compressed, camera/depth and
camera/camera_info, so a camera driver is wired in by remapping, never by editing code.  Commands
go to ~/command (std_msgs/String) or the ~/ground service.

If the node exits, the launch ends: on exit code 0 through a Shutdown action; on any other code
the exit handler raises, which LaunchService reports ("Caught exception in launch") and turns
into a shutdown with return code 1 - so `ros2 launch` itself exits 1.  (A Shutdown action alone
would end the launch with exit code 0: LaunchService.run() only returns non-zero for errors
inside launch, never for a process's exit code.)
"""

from __future__ import annotations

import os

from launch import LaunchContext, LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction, Shutdown
from launch.events.process import ProcessExited
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare

# (name, default, description) of every launch argument: the table is the interface.
LAUNCH_ARGUMENTS: tuple[tuple[str, str | PathJoinSubstitution, str], ...] = (
    ("image_topic", "camera/image", "colour image topic (sensor_msgs/Image)"),
    ("depth_topic", "camera/depth", "registered depth image topic (16UC1 mm or 32FC1 m)"),
    ("camera_info_topic", "camera/camera_info", "camera_info topic of the colour image"),
    (
        "params_file",
        PathJoinSubstitution([FindPackageShare("vlm_ros"), "config", "vlm_ros.yaml"]),
        "ROS 2 parameters file for the node",
    ),
    ("namespace", "", "namespace of the node and its topics"),
    ("backend", "", "grounding backend, overriding the parameters file; empty = keep the file's"),
    ("use_sim_time", "false", "use the /clock topic (simulation) instead of wall time"),
    ("log_level", "info", "debug | info | warn | error | fatal"),
)


def _end_launch(event: ProcessExited, context: LaunchContext) -> list[Shutdown]:
    """A node that exits ends the launch; a non-zero exit code makes `ros2 launch` exit 1."""
    what = f"{event.process_name} exited with code {event.returncode}"
    if event.returncode != 0:
        raise RuntimeError(what)
    return [Shutdown(reason=what)]


def _vlm_node(context: LaunchContext) -> list[Node]:
    """Build the node once the arguments are known: the backend override is only added when set,
    so an empty `backend` leaves the parameters file in charge; a params_file that is not a file
    fails the launch."""
    overrides: dict[str, object] = {"use_sim_time": LaunchConfiguration("use_sim_time")}
    # launch_ros only warns about a params file that is not a file and starts the node on its
    # defaults: a mistyped params_file must fail the launch instead.
    params_file = LaunchConfiguration("params_file").perform(context)
    if not os.path.isfile(params_file):
        raise FileNotFoundError(f"params_file {params_file!r} is not a file")
    backend = LaunchConfiguration("backend").perform(context).strip()
    if backend:
        overrides["backend"] = backend
    image_topic = LaunchConfiguration("image_topic")
    return [
        Node(
            package="vlm_ros",
            executable="vlm_node",
            name="vlm_ros",
            namespace=LaunchConfiguration("namespace"),
            output="screen",
            emulate_tty=True,
            parameters=[LaunchConfiguration("params_file"), overrides],
            remappings=[
                ("camera/image", image_topic),
                ("camera/image/compressed", [image_topic, "/compressed"]),
                ("camera/depth", LaunchConfiguration("depth_topic")),
                ("camera/camera_info", LaunchConfiguration("camera_info_topic")),
            ],
            ros_arguments=["--log-level", LaunchConfiguration("log_level")],
            on_exit=_end_launch,
        )
    ]


def generate_launch_description() -> LaunchDescription:
    arguments = [
        DeclareLaunchArgument(name, default_value=default, description=description)
        for name, default, description in LAUNCH_ARGUMENTS
    ]
    return LaunchDescription([*arguments, OpaqueFunction(function=_vlm_node)])
