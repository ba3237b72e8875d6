"""The thin rclpy shell around the core: message conversion, parameters, threads, publishers."""
