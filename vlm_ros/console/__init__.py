"""`vlm-ros console`: a web page to watch and drive a vlm_ros node from a browser.

The server (aiohttp, the ``console`` extra) is its own ROS node, ``vlm_ros_console``: it shows
the camera with the node's answers drawn over it and the node's ``~/debug_image``, sends typed
and spoken commands (push-to-talk through the project's VAD + Whisper + confidence gate) on
``~/command``, offers a clarification's choices and a confirmation's yes / no as buttons, and has
a STOP button (and the Esc key).  See README "Web console" and :mod:`vlm_ros.console.server`.
"""
