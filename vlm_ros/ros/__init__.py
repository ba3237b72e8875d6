"""The rclpy shell around the core: the vlm_ros node (node, worker, frame_buffer, model_guard,
outputs, diagnostics, params, frames, convert, messages, compat), the teleop and camera helpers,
the voice node, and the in-process graph the demos use.  Benchmark and soak tools: vlm_ros.tools."""
