"""Start the vlm_voice node (speech -> commands for vlm_ros).

    ros2 launch vlm_ros voice.launch.py                         # default microphone, tiny.en
    ros2 launch vlm_ros voice.launch.py input:=topic audio_topic:=/audio/audio
    ros2 launch vlm_ros voice.launch.py model:=/models/whisper-small-ct2 language:=zh

Accepted transcripts go to command_topic (the grounding node's ~/command); the voice node's own
~/result says what it heard and why it did or did not send it.  Every other parameter (see the
README's Voice section) can be given with --ros-args or a parameters file.

command_topic is relative (vlm_ros/command): with namespace:=robot1 it is
/robot1/vlm_ros/command, the ~/command of a vlm_ros node launched with the same namespace.
If the voice node exits the launch ends, and a non-zero exit code makes `ros2 launch` exit 1
(see vlm_ros.launch.py).
"""

from __future__ import annotations

from launch import LaunchContext, LaunchDescription
from launch.actions import DeclareLaunchArgument, Shutdown
from launch.events.process import ProcessExited
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue

# (name, default, description): forwarded as parameters of the same name.
LAUNCH_ARGUMENTS: tuple[tuple[str, str, str], ...] = (
    ("input", "microphone", "microphone | wav | topic"),
    ("wav_path", "", "input wav: the file to play"),
    ("audio_topic", "audio", "input topic: std_msgs/Int16MultiArray PCM16"),
    ("model", "", "CTranslate2 Whisper folder or hub id; empty = tiny.en (en) / multilingual base (zh, auto)"),
    ("language", "en", "spoken language; a multilingual model is needed for zh"),
    ("push_to_talk", "false", "take audio only while ~/talk is true"),
    ("wake_word", "", "only utterances starting with it are sent (stop always is)"),
    ("command_topic", "vlm_ros/command", "where accepted transcripts are published; relative, so "
     "it resolves inside the namespace (the vlm_ros node's ~/command there)"),
    ("namespace", "", "namespace of the voice node (use the vlm_ros node's)"),
)
_NOT_PARAMETERS = {"namespace"}
# Typed explicitly: launch would read "" as YAML null and "false" as whatever YAML says.
_BOOLEANS = {"push_to_talk"}


def _end_launch(event: ProcessExited, context: LaunchContext) -> list[Shutdown]:
    """The voice node exiting ends the launch; a non-zero exit code makes `ros2 launch` exit 1."""
    what = f"{event.process_name} exited with code {event.returncode}"
    if event.returncode != 0:
        raise RuntimeError(what)
    return [Shutdown(reason=what)]


def generate_launch_description() -> LaunchDescription:
    arguments = [DeclareLaunchArgument(name, default_value=default, description=text)
                 for name, default, text in LAUNCH_ARGUMENTS]
    parameters = {name: ParameterValue(LaunchConfiguration(name),
                                       value_type=bool if name in _BOOLEANS else str)
                  for name, _, _ in LAUNCH_ARGUMENTS if name not in _NOT_PARAMETERS}
    voice = Node(package="vlm_ros", executable="vlm_voice", name="vlm_voice",
                 namespace=LaunchConfiguration("namespace"), output="screen", emulate_tty=True,
                 parameters=[parameters], on_exit=_end_launch)
    return LaunchDescription([*arguments, voice])
