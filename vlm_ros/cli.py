"""`vlm-ros`: the command-line front end.  Every subcommand calls the same core as the node.

    vlm-ros ground --image PATH --command TEXT [--depth PATH --camera-info YAML] [--json]
                   [--annotate OUT.png]
    vlm-ros node [-h] [--ros-args ...]     # same as `ros2 run vlm_ros vlm_node`
    vlm-ros say "TEXT" [--wait S]          # text teleop: publish a command, print the result
    vlm-ros camera --image PATH [...]      # publish a photo as an RGB-D camera would
    vlm-ros demo [--out DIR] [--photo]     # the README's main job (the MuJoCo closed loop)
    vlm-ros demo --console                 # the MuJoCo robot, driven from a browser
    vlm-ros console [--node N] [--host H]  # web console: live view, commands, voice, STOP
    vlm-ros eval sim --scenes N --seed S --json   # score the chain against sim ground truth
    vlm-ros soak --minutes M --json        # load/soak the node (30 Hz RGB-D + command burst)
    vlm-ros bench [--backend B] --json     # per-stage latency, first goal, tracked goal rate
    vlm-ros describe --image PATH          # caption (VLM backends)
    vlm-ros ask --image PATH --question Q  # visual question answering (VLM backends)
    vlm-ros backends                       # what is installed and usable
    vlm-ros transcribe FILE.wav [--json]   # speech -> text (VAD + faster-whisper)
    vlm-ros listen [--hands-free]          # microphone -> commands to the node (push-to-talk)
    vlm-ros voice [-h] [--ros-args ...]    # the voice node (microphone / WAV / audio topic)
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

import cv2

from vlm_ros.argtypes import fraction as _fraction
from vlm_ros.argtypes import node_name as _node_name
from vlm_ros.argtypes import non_negative as _non_negative
from vlm_ros.argtypes import number as _number
from vlm_ros.argtypes import positive as _positive
from vlm_ros.argtypes import whole_number
from vlm_ros.backends import DEFAULT_BACKEND, REGISTRY, BackendError, create_backend


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is exactly one line on stderr (and exit code 2)."""

    def error(self, message: str) -> Any:
        hint = f" (see {self.prog} --help)" if "required" in message else ""
        self.exit(2, f"{self.prog}: error: {message}{hint}\n")


# ---------------------------------------------------------------------------- argument types
# Each raises ArgumentTypeError, which _Parser turns into one "argument --x: ..." line.
def _positive_int(text: str) -> int:
    return whole_number(text, 1)


def _non_negative_int(text: str) -> int:
    return whole_number(text, 0)


def _key_value(text: str) -> tuple[str, Any]:
    key, equals, value = text.partition("=")
    if not equals or not key.strip():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE (e.g. timeout_s=10), got {text!r}")
    return key.strip(), _literal(value.strip())


def _mapping(text: str) -> str:
    """A YAML/JSON mapping as the node's backend_options parameter takes it ('' = none)."""
    import yaml

    try:
        value = yaml.safe_load(text) if text.strip() else {}
    except yaml.YAMLError as exc:
        raise argparse.ArgumentTypeError(
            f"not YAML: {str(exc).splitlines()[0]} (expected a mapping, e.g. '{{tiles: 2}}')"
        ) from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"expected a YAML/JSON mapping, e.g. '{{tiles: 2}}', "
                                         f"got {text!r}")
    return text


IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")


def _output_file(text: str) -> str:
    """A file to write: its folder must exist (checked before any work is done)."""
    folder = os.path.dirname(os.path.abspath(text))
    if not text or text.endswith(os.sep) or os.path.isdir(text):
        raise argparse.ArgumentTypeError(f"expected a file name, got {text!r}")
    if not os.path.isdir(folder):
        raise argparse.ArgumentTypeError(f"folder does not exist: {folder}")
    if not os.access(folder, os.W_OK):
        raise argparse.ArgumentTypeError(f"folder is not writable: {folder}")
    return text


def _image_output(text: str) -> str:
    if not text.lower().endswith(IMAGE_EXTENSIONS):
        raise argparse.ArgumentTypeError(
            f"needs an image extension ({', '.join(IMAGE_EXTENSIONS)}), got {text!r}")
    return _output_file(text)


def _add_backend_args(parser: argparse.ArgumentParser, default: str = DEFAULT_BACKEND) -> None:
    parser.add_argument("--backend", default=default, choices=sorted(REGISTRY))
    parser.add_argument("--model", default="", help="model id or local path (backend-specific)")
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda")
    parser.add_argument("--dtype", default="auto", help="auto | float16 | bfloat16 | float32")
    parser.add_argument("--score-threshold", type=_fraction, default=None,
                        help="detector score floor, 0..1 (default: the backend's own - owl 0.1, "
                             "the others 0.3)")
    parser.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                        type=_key_value,
                        help="adapter-specific option, e.g. base_url=http://host:8000/v1 "
                             "(repeatable)")


def _backend_from_args(args: argparse.Namespace) -> Any:
    options: dict[str, Any] = {}
    if args.score_threshold is not None:  # unset: the backend's own default
        options["score_threshold"] = args.score_threshold
    if args.model:
        options["model"] = args.model
    if args.device != "auto":
        options["device"] = args.device
    if args.dtype != "auto":
        options["dtype"] = args.dtype
    options.update(args.option)
    try:
        return create_backend(args.backend, **options)
    except (TypeError, ValueError) as exc:  # an option the adapter does not take, or a bad value
        raise BackendError(f"backend {args.backend!r}: bad --option/--model/--device/--dtype: "
                           f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"
                           ) from exc


def _literal(text: str) -> Any:
    """KEY=VALUE values: numbers and booleans as such, anything else as text."""
    for convert in (int, float):
        try:
            return convert(text)
        except ValueError:
            pass
    return {"true": True, "false": False}.get(text.lower(), text)


def _fail(message: str) -> int:
    print(f"vlm-ros: error: {message}", file=sys.stderr)
    return 2


# ---------------------------------------------------------------------------- ground
def cmd_ground(args: argparse.Namespace) -> int:
    from vlm_ros.core.calibration import CameraInputError, check_camera_input
    from vlm_ros.core.geometry import StaticFrameResolver, UnknownExtrinsics, camera_extrinsics
    from vlm_ros.core.goals import GoalConfig
    from vlm_ros.core.io import InputError, load_calibration, load_depth, load_image
    from vlm_ros.core.pipeline import Pipeline, PipelineConfig
    from vlm_ros.core.session import CommandSession
    from vlm_ros.core.types import Frame

    try:
        rgb = load_image(args.image)
        depth = load_depth(args.depth, args.depth_scale) if args.depth else None
        calibration = load_calibration(args.camera_info) if args.camera_info else None
        # The node's rules (vlm_ros/core/calibration.py): depth registered to the image, and a
        # calibration for exactly this image or an exact integer binning of it.
        intrinsics = check_camera_input(rgb.shape[1], rgb.shape[0],
                                        None if depth is None else depth.shape, calibration,
                                        not args.raw_image, depth_name="--depth")
    except (InputError, CameraInputError) as exc:
        return _fail(str(exc))
    try:
        backend = _backend_from_args(args)
    except BackendError as exc:
        return _fail(str(exc))
    config = PipelineConfig(goals=GoalConfig(base_frame=args.base_frame))
    # No --camera-pose: the camera's pose on the robot is unknown, so the grounding is printed
    # without goals and says why (as the node does without TF and camera_pose_in_base).
    frames = (StaticFrameResolver(args.base_frame, args.frame_id,
                                  camera_extrinsics(*args.camera_pose))
              if args.camera_pose is not None else UnknownExtrinsics(args.base_frame))
    pipeline = Pipeline(backend, config, frames)
    frame = Frame(rgb=rgb, depth_m=depth, intrinsics=intrinsics, frame_id=args.frame_id)
    result = CommandSession(pipeline).run(args.command, frame)
    if args.annotate:
        from vlm_ros.core.annotate import annotate

        try:
            written = cv2.imwrite(args.annotate,
                                  cv2.cvtColor(annotate(rgb, result), cv2.COLOR_RGB2BGR))
        except cv2.error:
            written = False
        if not written:
            return _fail(f"cannot write the annotated image to {args.annotate}")
    if args.json:
        print(json.dumps(result.to_dict(), ensure_ascii=False))
    else:
        print(_summary(result.to_dict()))
    return 0


def _summary(result: dict[str, Any]) -> str:
    lines = [f"[{result['status']}] {result['message']}"]
    for target in result["targets"]:
        where = f" at {target['point_base']} m" if target.get("point_base") else ""
        lines.append(f"  target: {target['label']} {target['score']:.2f} bbox={target['bbox']}"
                     f"{where}")
    if result.get("clarification"):
        lines.append(f"  question: {result['clarification']}")
    for goal in result["goals"]:
        lines.append(f"  goal {goal['kind']}: {goal['pose']['position']} in {goal['frame_id']}")
    return "\n".join(lines)


# ---------------------------------------------------------------------------- ROS commands
NODE_SUMMARY = ("Run the vlm_ros grounding node, as `ros2 run vlm_ros vlm_node` does.  It takes "
                "only ROS arguments: settings are ROS parameters (-p NAME:=VALUE or "
                "--params-file), camera topics are remapped with -r.")
VOICE_SUMMARY = ("Run the voice node (speech -> commands for vlm_ros), as `ros2 run vlm_ros "
                 "vlm_voice` does.  It takes only ROS arguments: settings are ROS parameters "
                 "(-p NAME:=VALUE or --params-file).")


def _screen_node_args(subcommand: str, rest: list[str]) -> int | None:
    """--help (exit 0) and non-ROS arguments (one line, exit 2) of `vlm-ros node|voice`, before
    rclpy starts; None when the node may start."""
    from vlm_ros.ros.run import check_node_args, node_usage

    if subcommand == "node":
        from vlm_ros.ros.params import PARAMETERS as parameters

        summary = NODE_SUMMARY
    else:
        from vlm_ros.ros.voice_node import VOICE_PARAMETERS as parameters

        summary = VOICE_SUMMARY
    program = f"vlm-ros {subcommand}"
    return check_node_args(program, rest, node_usage(program, summary, parameters))


def cmd_node(args: argparse.Namespace, rest: list[str]) -> int:
    code = _screen_node_args("node", rest)
    if code is not None:
        return code
    from vlm_ros.ros.node import main

    main(["vlm_ros", *rest])
    return 0


def cmd_say(args: argparse.Namespace) -> int:
    from vlm_ros.ros.teleop import say

    result = say(args.text, node=args.node, wait_s=args.wait)
    if result is None:
        return _fail(f"no result from {args.node} within {args.wait} s (is the node running?)")
    print(json.dumps(result, ensure_ascii=False) if args.json else _summary(result))
    return 0


def cmd_memory(args: argparse.Namespace) -> int:
    from vlm_ros.ros.teleop import memory

    action = "save" if args.save else "clear" if args.clear else "show"
    answer = memory(args.node, action, wait_s=args.wait)
    if answer is None:
        return _fail(f"no answer from {args.node} within {args.wait} s (is the node running?)")
    if action != "show":
        print(answer["message"])
        return 0 if answer["success"] else 1
    if args.json:
        print(json.dumps(answer, ensure_ascii=False))
        return 0
    objects = answer.get("objects", [])
    print(f"{len(objects)} object(s) remembered in {answer.get('frame_id')}")
    for obj in objects:
        what = f"{obj['color']} {obj['label']}" if obj.get("color") else obj["label"]
        x, y, z = obj["position"]
        print(f"  #{obj['id']} {what}: ({x:.2f}, {y:.2f}, {z:.2f}) m +-{obj['sigma_m']:.2f}, "
              f"seen {obj['times_seen']}x, last {obj.get('age_s', 0):.0f} s ago")
    return 0


def cmd_camera(args: argparse.Namespace) -> int:
    import rclpy

    from vlm_ros.core.io import InputError, load_camera_info, load_depth, load_image
    from vlm_ros.ros.photo_camera import PhotoCamera
    from vlm_ros.ros.run import end_signal_handling, interrupt_once, shutdown_rclpy
    from vlm_ros.scenes import intrinsics_for

    try:
        rgb = load_image(args.image)
        depth = load_depth(args.depth) if args.depth else None
        intrinsics = (load_camera_info(args.camera_info) if args.camera_info
                      else intrinsics_for(rgb.shape[1], rgb.shape[0]))
    except InputError as exc:
        return _fail(str(exc))
    if (intrinsics.width, intrinsics.height) != (rgb.shape[1], rgb.shape[0]):
        intrinsics = intrinsics.scaled_to(rgb.shape[1], rgb.shape[0])  # as `ground` does
    if depth is not None and depth.shape[:2] != rgb.shape[:2]:
        return _fail(f"depth is {depth.shape[1]}x{depth.shape[0]} but the image is "
                     f"{rgb.shape[1]}x{rgb.shape[0]} (it must be registered to the image)")
    interrupt_once()  # before rclpy.init(), which chains its handler to this one
    rclpy.init()
    node = PhotoCamera(rgb, depth, intrinsics, rate_hz=args.rate, frame_id=args.frame_id,
                       log_every_s=args.log_every)
    try:
        rclpy.spin(node)
    except KeyboardInterrupt:
        pass
    finally:
        end_signal_handling()
        node.destroy_node()
        shutdown_rclpy()
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    if args.mcp:
        if args.console or args.photo:
            return _fail("--mcp serves the simulated robot to an MCP host: not with "
                         "--console or --photo")
        from vlm_ros.agent.demo import run_sim_mcp

        return run_sim_mcp(args)
    if args.console:
        from vlm_ros.console.demo import run_sim_console

        return run_sim_console(args)
    if args.photo:
        from vlm_ros.demo import run_photo_demo

        return run_photo_demo(args.out)
    from vlm_ros.sim.demo import run_sim_demo

    return run_sim_demo(args.out, seed=args.seed)


def cmd_mcp(args: argparse.Namespace) -> int:
    from vlm_ros.agent.run import run_mcp

    return run_mcp(args)


def cmd_console(args: argparse.Namespace) -> int:
    from vlm_ros.console.args import run_from_args

    return run_from_args(args)


def cmd_eval(args: argparse.Namespace) -> int:
    from vlm_ros.sim.evaluate import run_evaluation

    if args.memory:
        from vlm_ros.sim.evaluate_memory import run_memory_evaluation

        report = run_memory_evaluation(scenes=args.scenes, seed=args.seed)
        if args.json:
            print(json.dumps(report))
        else:
            for key in ("scenes", "search_success", "views_needed_mean", "memory_goals",
                        "memory_goal_error_m_median", "memory_goal_error_m_max",
                        "memory_pick_success", "false_memory_goals"):
                print(f"{key:>27}: {report.get(key)}")
        return 0
    if args.pick:
        from vlm_ros.sim.evaluate_grasp import run_grasp_evaluation

        report = run_grasp_evaluation(scenes=args.scenes, seed=args.seed,
                                      strategies=tuple(args.strategies),
                                      detector=args.detector)
        if args.json:
            print(json.dumps(report))
        else:
            for kind, row in report["per_class"].items():
                for strategy, cells in row.items():
                    print(f"{kind:>14} {strategy:>14}: picked {cells['picked']:.2f}, grounded "
                          f"{cells['grounded']:.2f}, refused {cells['refused']:.2f}")
            for strategy, cells in report["overall"].items():
                print(f"{'all':>14} {strategy:>14}: {cells}")
            print(f"{'too wide published':>29}: {report['too_wide_published']}")
        return 0
    result = run_evaluation(scenes=args.scenes, seed=args.seed, pick=not args.no_pick,
                            backend_options=args.backend_options,
                            propose_from_depth=args.propose_from_depth)
    if args.json:
        print(json.dumps(result))
    else:
        for key in ("scenes", "cases", "accuracy", "not_found_correct", "ambiguous_correct",
                    "median_3d_error_m", "pick_success"):
            print(f"{key:>18}: {result.get(key)}")
        for kind, row in sorted(result.get("per_category", {}).items()):
            print(f"{kind:>18}: {row}")
    return 0


def cmd_soak(args: argparse.Namespace) -> int:
    from vlm_ros.tools.soak import run_soak

    result = run_soak(args.minutes, rate_hz=args.rate, commands_per_s=args.commands_per_s)
    print(json.dumps(result) if args.json else json.dumps(result, indent=2))
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from vlm_ros.tools.bench import BenchConfig, format_report, run_bench

    config = BenchConfig(seconds=args.seconds, commands=args.commands, rate_hz=args.rate_hz,
                         backend=args.backend, model=args.model, device=args.device,
                         dtype=args.dtype, backend_options=args.backend_options)
    report = run_bench(config)
    text = json.dumps(report, ensure_ascii=False)
    if args.out:
        with open(args.out, "w", encoding="utf-8") as out:
            out.write(text + "\n")
    print(text if args.json else format_report(report))
    return 0 if report.get("ok") else 1


def cmd_describe(args: argparse.Namespace) -> int:
    return _image_question(args, None)


def cmd_ask(args: argparse.Namespace) -> int:
    return _image_question(args, args.question)


VQA_DEFAULT_BACKEND = "qwen_vl"  # describe / ask: the default backend ssd_coco can do neither


def _vqa_choice(args: argparse.Namespace, capability: str) -> str:
    """One line saying which backend and model describe/ask will load, and why that one; a
    BackendError before anything loads when the backend cannot do ``capability``."""
    from vlm_ros.backends import backend_class, default_model

    doing = "describe images" if capability == "describe" else "answer questions about images"
    cls = backend_class(args.backend)
    if capability not in cls.capabilities:
        able = [name for name in sorted(REGISTRY) if name != args.backend
                and capability in _capabilities(name)]
        raise BackendError(f"backend {args.backend!r} cannot {doing}; use --backend "
                           f"{' / '.join(able) or VQA_DEFAULT_BACKEND}")
    model = args.model or default_model(cls) or "its default model"
    line = f"{args.command_name}: using {args.backend} ({model})"
    if args.backend == VQA_DEFAULT_BACKEND and not args.model:
        line += (f": the default backend {DEFAULT_BACKEND} cannot {doing}; "
                 f"pass --backend/--model to choose")
    return line


def _capabilities(name: str) -> frozenset[str]:
    from vlm_ros.backends import backend_class

    try:
        return frozenset(backend_class(name).capabilities)
    except BackendError:  # not installed here
        return frozenset()


def _image_question(args: argparse.Namespace, question: str | None) -> int:
    """describe (question None) or ask: one answer about one image, as text or JSON."""
    import time

    from vlm_ros.core.io import InputError, load_image

    try:
        rgb = load_image(args.image)
        print(_vqa_choice(args, "describe" if question is None else "ask"), file=sys.stderr)
        backend = _backend_from_args(args)
        started = time.perf_counter()
        answer = backend.describe(rgb) if question is None else backend.ask(rgb, question)
    except (InputError, BackendError) as exc:
        return _fail(str(exc))
    result = {"backend": backend.name, "question": question, "answer": answer,
              "latency_ms": round((time.perf_counter() - started) * 1000.0, 1)}
    print(json.dumps(result, ensure_ascii=False) if args.json else answer)
    return 0


def cmd_backends(args: argparse.Namespace) -> int:
    from vlm_ros.backends.inventory import inventory

    print(json.dumps(inventory(load_default=args.load), indent=2))
    return 0


# ---------------------------------------------------------------------------- voice
def _add_speech_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default="",
                        help="CTranslate2 Whisper folder or hub id (default: tiny.en for en, "
                             "the multilingual base for zh / auto)")
    parser.add_argument("--language", default="en", help="en, zh, ... or auto (multilingual)")
    parser.add_argument("--device", default="cpu", help="cpu | cuda | auto")
    parser.add_argument("--compute-type", default="int8")
    parser.add_argument("--beam-size", type=_positive_int, default=5)
    parser.add_argument("--vad-threshold", type=_fraction, default=0.5,
                        help="speech probability that starts an utterance, 0..1 (default 0.5)")


def _voice_configs(args: argparse.Namespace) -> tuple[Any, Any]:
    from vlm_ros.voice.transcriber import TranscriberConfig
    from vlm_ros.voice.vad import VadConfig

    return (TranscriberConfig(model=args.model, device=args.device,
                              compute_type=args.compute_type, language=args.language,
                              beam_size=args.beam_size),
            VadConfig(threshold=args.vad_threshold))


def cmd_transcribe(args: argparse.Namespace) -> int:
    from vlm_ros.voice import AudioError, Transcriber, VadError, VoiceError, transcribe_file
    from vlm_ros.voice.vad import SileroVad

    transcriber_config, vad_config = _voice_configs(args)
    try:  # models load first: latency_ms is the transcription's own time
        transcriber, vad = Transcriber(transcriber_config), SileroVad()
        transcript = transcribe_file(args.file, transcriber, vad_config, vad)
    except (AudioError, VoiceError, VadError) as exc:
        return _fail(str(exc))
    if args.json:
        print(json.dumps(transcript.to_dict(), ensure_ascii=False))
    elif transcript.text:
        print(transcript.text)
    else:
        print("(no speech)", file=sys.stderr)
    return 0


def cmd_listen(args: argparse.Namespace) -> int:
    from vlm_ros.ros.listen import run_listen
    from vlm_ros.voice import (
        AudioError,
        GateConfig,
        Transcriber,
        VadError,
        VoiceError,
        VoiceFrontEnd,
    )

    transcriber_config, vad_config = _voice_configs(args)
    gate = GateConfig(min_confidence=args.min_confidence, wake_word=args.wake_word)
    try:
        return run_listen(
            lambda: VoiceFrontEnd(Transcriber(transcriber_config), vad_config, gate),
            node=args.node, mic_device=args.mic_device or None, mic_rate=args.mic_rate,
            hands_free=args.hands_free, wait_s=args.wait, show=_summary)
    except (AudioError, VoiceError, VadError) as exc:  # AudioError covers no microphone
        return _fail(str(exc))


def cmd_voice(args: argparse.Namespace, rest: list[str]) -> int:
    code = _screen_node_args("voice", rest)
    if code is not None:
        return code
    from vlm_ros.ros.voice_node import main

    main(["vlm_voice", *rest])
    return 0


def _add_voice_parsers(sub: Any) -> None:
    transcribe = sub.add_parser("transcribe", help="transcribe a WAV file (VAD + Whisper)")
    transcribe.add_argument("file", help="PCM WAV file, any rate and channel count")
    transcribe.add_argument("--json", action="store_true")
    _add_speech_args(transcribe)

    listen = sub.add_parser("listen", help="speak commands to the node (push-to-talk)")
    listen.add_argument("--node", default="/vlm_ros", type=_node_name,
                        help="the node's name, e.g. vlm_ros or /robot1/vlm_ros (default /vlm_ros)")
    listen.add_argument("--hands-free", action="store_true",
                        help="VAD decides when an utterance ends (no Enter key)")
    listen.add_argument("--mic-device", default="", help="sounddevice name or index")
    listen.add_argument("--mic-rate", type=_non_negative_int, default=0,
                        help="sample rate to open the microphone at (Hz); 0 = the device's default")
    listen.add_argument("--min-confidence", type=_fraction, default=0.4,
                        help="transcripts below this confidence (0..1) are not sent")
    listen.add_argument("--wake-word", default="")
    listen.add_argument("--wait", type=_positive, default=10.0,
                        help="seconds to wait for the node's answer (default 10)")
    _add_speech_args(listen)

    sub.add_parser("voice", help="run the voice node (pass --ros-args ... after it; see "
                                 "vlm-ros voice --help)")


# ---------------------------------------------------------------------------- parser
def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="vlm-ros", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command_name", required=True)

    ground = sub.add_parser("ground", help="ground a command in an image file")
    ground.add_argument("--image", required=True, help="colour image file (PNG, JPEG, ...)")
    ground.add_argument("--command", required=True, help="the command, e.g. 'grab the red cup'")
    ground.add_argument("--depth", help="16-bit PNG or .npy depth registered to the image")
    ground.add_argument("--camera-info", help="camera calibration YAML")
    ground.add_argument("--depth-scale", type=_positive, default=0.001,
                        help="metres per unit of a 16-bit depth PNG (default 0.001: millimetres)")
    ground.add_argument("--frame-id", default="camera_color_optical_frame")
    ground.add_argument("--base-frame", default="base_link")
    ground.add_argument("--camera-pose", type=_number, nargs=6, default=None,
                        metavar=("X", "Y", "Z", "ROLL", "PITCH", "YAW"),
                        help="camera body frame pose in the base frame: x y z (m) roll pitch yaw "
                             "(rad); without it no goals (the camera's pose on the robot is "
                             "unknown)")
    ground.add_argument("--raw-image", action="store_true",
                        help="the image is raw (not rectified): use the calibration's K, not P")
    ground.add_argument("--json", action="store_true", help="print the result as one JSON line")
    ground.add_argument("--annotate", metavar="OUT.png", type=_image_output,
                        help="also write the image with the result drawn on it (existing folder)")
    _add_backend_args(ground)

    sub.add_parser("node", help="run the ROS 2 node (pass --ros-args ... after it; see "
                                "vlm-ros node --help)")

    say = sub.add_parser("say", help="publish a text command and print the node's result")
    say.add_argument("text")
    say.add_argument("--node", default="/vlm_ros", type=_node_name,
                     help="the node's name, e.g. vlm_ros or /robot1/vlm_ros (default /vlm_ros)")
    say.add_argument("--wait", type=_positive, default=10.0,
                     help="seconds to wait for the node and its answer (default 10)")
    say.add_argument("--json", action="store_true")

    camera = sub.add_parser("camera", help="publish a photo as camera/image (+depth, info)")
    camera.add_argument("--image", required=True)
    camera.add_argument("--depth", help="16-bit PNG (mm) or .npy (m) depth registered to it")
    camera.add_argument("--camera-info", help="camera calibration YAML (default: a 60 degree "
                                              "horizontal field of view)")
    camera.add_argument("--rate", type=_positive, default=10.0,
                        help="frames per second (Hz, default 10)")
    camera.add_argument("--frame-id", default="camera_color_optical_frame")
    camera.add_argument("--log-every", type=_positive, default=10.0, metavar="S",
                        help="log the published frame count every S seconds (default 10)")

    demo = sub.add_parser("demo", help="the closed loop in the MuJoCo sim (or --photo)")
    demo.add_argument("--out", default="out/demo")
    demo.add_argument("--seed", type=int, default=7)
    demo.add_argument("--photo", action="store_true",
                      help="ground a real photo through the node instead of the simulator")
    demo.add_argument("--console", action="store_true",
                      help="no script: drive the simulated robot from the web console")
    demo.add_argument("--mcp", action="store_true",
                      help="no script: serve the simulated robot to an MCP host (an LLM agent; "
                           "docs/mcp.md), with config/agent_policy.yaml")
    from vlm_ros.agent.run import add_mcp_arguments
    from vlm_ros.console.args import add_console_arguments

    add_console_arguments(demo, demo=True)
    add_mcp_arguments(demo, demo=True)
    mcp = sub.add_parser("mcp", help="MCP server over a running node: tools for LLM agents, "
                                     "an approval policy (needs the mcp extra)")
    add_mcp_arguments(mcp)
    console = sub.add_parser("console", help="web page: live view, commands, push-to-talk, "
                                             "STOP (needs the console extra: aiohttp)")
    add_console_arguments(console)

    evaluate = sub.add_parser("eval", help="score the whole chain against ground truth")
    eval_kinds = evaluate.add_subparsers(dest="eval_kind", required=True)
    sim_eval = eval_kinds.add_parser("sim", help="MuJoCo scenes with graded referring expressions")
    sim_eval.add_argument("--scenes", type=_positive_int, default=20)
    sim_eval.add_argument("--seed", type=int, default=0)
    sim_eval.add_argument("--json", action="store_true")
    sim_eval.add_argument("--no-pick", action="store_true", help="ground only; skip the gripper")
    sim_eval.add_argument("--no-propose-from-depth", dest="propose_from_depth",
                          action="store_false",
                          help="turn off the node's depth proposals (on for the tabletop)")
    sim_eval.add_argument("--backend-options", default="", type=_mapping,
                          help="the node's backend_options, e.g. '{tiles: 2}'")
    sim_eval.add_argument("--memory", action="store_true",
                          help="active search and the object memory instead: search success, "
                               "views needed, memory goal error (m), false memory goals")
    sim_eval.add_argument("--pick", action="store_true",
                          help="grasps on harder objects instead (lying bottle, book, stick, "
                               "plate, rotated box, touching objects): pick success per class "
                               "and per strategy, in physics; --scenes per class")
    sim_eval.add_argument("--strategies", nargs="+", default=["centroid", "auto"],
                          choices=["centroid", "principal_axis", "top_plane", "auto"],
                          help="grasp strategies compared by --pick")
    sim_eval.add_argument("--detector", choices=["oracle", "ssd"], default="oracle",
                          help="--pick: the simulator's true boxes (measures grasping) or the "
                               "default detector (measures detection too)")

    memory = sub.add_parser("memory", help="the node's object memory: print it, or save / "
                                           "clear it")
    memory.add_argument("--node", default="/vlm_ros", type=_node_name,
                        help="the node (with or without the leading slash)")
    memory.add_argument("--wait", type=_positive, default=10.0,
                        help="seconds to wait for the node (default 10)")
    memory.add_argument("--json", action="store_true", help="print the memory as JSON")
    memory_action = memory.add_mutually_exclusive_group()
    memory_action.add_argument("--save", action="store_true",
                               help="write it to the node's memory_file (~/save_memory)")
    memory_action.add_argument("--clear", action="store_true",
                               help="forget everything (~/clear_memory)")

    soak = sub.add_parser("soak", help="load/soak the node: 30 Hz RGB-D + a command burst")
    soak.add_argument("--minutes", type=_positive, default=1.0,
                      help="how long to run (minutes, default 1)")
    soak.add_argument("--rate", type=_positive, default=30.0,
                      help="camera frames per second (Hz, default 30)")
    soak.add_argument("--commands-per-s", type=_non_negative, default=50.0,
                      help="commands per second in the burst (default 50)")
    soak.add_argument("--json", action="store_true")

    bench = sub.add_parser("bench", help="benchmark the node over DDS: stages, first goal, "
                                         "tracked goal rate, dropped frames")
    bench.add_argument("--seconds", type=_positive, default=20.0,
                       help="length of the follow phase (s, default 20)")
    bench.add_argument("--commands", type=_positive_int, default=20,
                       help="'grab the red cup' commands")
    bench.add_argument("--rate-hz", type=_positive, default=30.0,
                       help="camera frames per second (Hz, default 30)")
    bench.add_argument("--backend", default="", help="the node's backend (default: its own)")
    bench.add_argument("--model", default="")
    bench.add_argument("--device", default="", help="auto | cpu | cuda")
    bench.add_argument("--dtype", default="")
    bench.add_argument("--backend-options", default="", type=_mapping,
                       help="the node's backend_options, e.g. '{tiles: 2}'")
    bench.add_argument("--json", action="store_true", help="print the report as JSON")
    bench.add_argument("--out", metavar="FILE", type=_output_file,
                       help="also write the JSON report here (existing folder)")

    for name, helptext in (("describe", "caption an image with a VLM backend"),
                           ("ask", "answer a question about an image with a VLM backend")):
        vqa = sub.add_parser(name, help=helptext)
        vqa.add_argument("--image", required=True)
        if name == "ask":
            vqa.add_argument("--question", required=True)
        vqa.add_argument("--json", action="store_true")
        _add_backend_args(vqa, default=VQA_DEFAULT_BACKEND)

    backends = sub.add_parser("backends", help="list backends: installed, usable, capabilities")
    backends.add_argument("--load", action="store_true",
                          help="also load each backend's default model (may download)")
    _add_voice_parsers(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "node":
        return cmd_node(argparse.Namespace(), argv[1:])
    if argv and argv[0] == "voice":
        return cmd_voice(argparse.Namespace(), argv[1:])
    args = build_parser().parse_args(argv)
    handlers = {"ground": cmd_ground, "say": cmd_say, "camera": cmd_camera, "demo": cmd_demo,
                "describe": cmd_describe, "ask": cmd_ask, "backends": cmd_backends,
                "eval": cmd_eval, "soak": cmd_soak, "bench": cmd_bench, "memory": cmd_memory,
                "transcribe": cmd_transcribe,
                "listen": cmd_listen, "console": cmd_console, "mcp": cmd_mcp}
    return handlers[args.command_name](args)


if __name__ == "__main__":
    raise SystemExit(main())
