"""`vlm-ros`: the command-line front end.  Every subcommand calls the same core as the node.

    vlm-ros ground --image PATH --command TEXT [--depth PATH --camera-info YAML] [--json]
                   [--annotate OUT.png]
    vlm-ros node [--ros-args ...]          # same as `ros2 run vlm_ros vlm_node`
    vlm-ros say "TEXT" [--wait S]          # text teleop: publish a command, print the result
    vlm-ros camera --image PATH [...]      # publish a photo as an RGB-D camera would
    vlm-ros demo [--out DIR] [--photo]     # the README's main job (the MuJoCo closed loop)
    vlm-ros eval sim --scenes N --seed S --json   # score the chain against sim ground truth
    vlm-ros soak --minutes M --json        # load/soak the node (30 Hz RGB-D + command burst)
    vlm-ros bench [--backend B] --json     # per-stage latency, first goal, tracked goal rate
    vlm-ros describe --image PATH          # caption (VLM backends)
    vlm-ros ask --image PATH --question Q  # visual question answering (VLM backends)
    vlm-ros backends                       # what is installed and usable
    vlm-ros transcribe FILE.wav [--json]   # speech -> text (VAD + faster-whisper)
    vlm-ros listen [--hands-free]          # microphone -> commands to the node (push-to-talk)
    vlm-ros voice [--ros-args ...]         # the voice node (microphone / WAV / audio topic)
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

import cv2

from vlm_ros.backends import DEFAULT_BACKEND, REGISTRY, BackendError, create_backend


def _add_backend_args(parser: argparse.ArgumentParser, default: str = DEFAULT_BACKEND) -> None:
    parser.add_argument("--backend", default=default, choices=sorted(REGISTRY))
    parser.add_argument("--model", default="", help="model id or local path (backend-specific)")
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda")
    parser.add_argument("--dtype", default="auto", help="auto | float16 | bfloat16 | float32")
    parser.add_argument("--score-threshold", type=float, default=0.3)
    parser.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                        help="adapter-specific option, e.g. base_url=http://host:8000/v1")


def _backend_from_args(args: argparse.Namespace) -> Any:
    options: dict[str, Any] = {"score_threshold": args.score_threshold}
    if args.model:
        options["model"] = args.model
    if args.device != "auto":
        options["device"] = args.device
    if args.dtype != "auto":
        options["dtype"] = args.dtype
    for item in args.option:
        key, _, value = item.partition("=")
        options[key.strip()] = _literal(value.strip())
    return create_backend(args.backend, **options)


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
    from vlm_ros.core.geometry import StaticFrameResolver, camera_extrinsics
    from vlm_ros.core.goals import GoalConfig
    from vlm_ros.core.io import InputError, load_camera_info, load_depth, load_image
    from vlm_ros.core.pipeline import Pipeline, PipelineConfig
    from vlm_ros.core.session import CommandSession
    from vlm_ros.core.types import Frame

    try:
        rgb = load_image(args.image)
        depth = load_depth(args.depth, args.depth_scale) if args.depth else None
        intrinsics = load_camera_info(args.camera_info) if args.camera_info else None
    except InputError as exc:
        return _fail(str(exc))
    if intrinsics is not None and (intrinsics.width, intrinsics.height) != (rgb.shape[1],
                                                                            rgb.shape[0]):
        intrinsics = intrinsics.scaled_to(rgb.shape[1], rgb.shape[0])
    try:
        backend = _backend_from_args(args)
    except BackendError as exc:
        return _fail(str(exc))
    config = PipelineConfig(goals=GoalConfig(base_frame=args.base_frame))
    frames = StaticFrameResolver(args.base_frame, args.frame_id,
                                 camera_extrinsics(*args.camera_pose))
    pipeline = Pipeline(backend, config, frames)
    frame = Frame(rgb=rgb, depth_m=depth, intrinsics=intrinsics, frame_id=args.frame_id)
    result = CommandSession(pipeline).run(args.command, frame)
    if args.annotate:
        from vlm_ros.core.annotate import annotate

        cv2.imwrite(args.annotate, cv2.cvtColor(annotate(rgb, result), cv2.COLOR_RGB2BGR))
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
def cmd_node(args: argparse.Namespace, rest: list[str]) -> int:
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


def cmd_camera(args: argparse.Namespace) -> int:
    import rclpy

    from vlm_ros.core.io import InputError, load_camera_info, load_depth, load_image
    from vlm_ros.ros.photo_camera import PhotoCamera
    from vlm_ros.scenes import intrinsics_for

    try:
        rgb = load_image(args.image)
        depth = load_depth(args.depth) if args.depth else None
        intrinsics = (load_camera_info(args.camera_info) if args.camera_info
                      else intrinsics_for(rgb.shape[1], rgb.shape[0]))
    except InputError as exc:
        return _fail(str(exc))
    rclpy.init()
    node = PhotoCamera(rgb, depth, intrinsics, rate_hz=args.rate, frame_id=args.frame_id)
    try:
        rclpy.spin(node)
    except KeyboardInterrupt:
        pass
    finally:
        node.destroy_node()
        if rclpy.ok():
            rclpy.shutdown()
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    if args.photo:
        from vlm_ros.demo import run_photo_demo

        return run_photo_demo(args.out)
    from vlm_ros.sim.demo import run_sim_demo

    return run_sim_demo(args.out, seed=args.seed)


def cmd_eval(args: argparse.Namespace) -> int:
    from vlm_ros.sim.evaluate import run_evaluation

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
    parser.add_argument("--beam-size", type=int, default=5)
    parser.add_argument("--vad-threshold", type=float, default=0.5)


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
    from vlm_ros.ros.voice_node import main

    main(["vlm_voice", *rest])
    return 0


def _add_voice_parsers(sub: Any) -> None:
    transcribe = sub.add_parser("transcribe", help="transcribe a WAV file (VAD + Whisper)")
    transcribe.add_argument("file", help="PCM WAV file, any rate and channel count")
    transcribe.add_argument("--json", action="store_true")
    _add_speech_args(transcribe)

    listen = sub.add_parser("listen", help="speak commands to the node (push-to-talk)")
    listen.add_argument("--node", default="/vlm_ros", help="the node's fully qualified name")
    listen.add_argument("--hands-free", action="store_true",
                        help="VAD decides when an utterance ends (no Enter key)")
    listen.add_argument("--mic-device", default="", help="sounddevice name or index")
    listen.add_argument("--mic-rate", type=int, default=0, help="0 = the device's default")
    listen.add_argument("--min-confidence", type=float, default=0.4)
    listen.add_argument("--wake-word", default="")
    listen.add_argument("--wait", type=float, default=10.0)
    _add_speech_args(listen)

    sub.add_parser("voice", help="run the voice node (pass --ros-args ... after it)")


# ---------------------------------------------------------------------------- parser
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vlm-ros", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command_name", required=True)

    ground = sub.add_parser("ground", help="ground a command in an image file")
    ground.add_argument("--image", required=True)
    ground.add_argument("--command", required=True)
    ground.add_argument("--depth", help="16-bit PNG (mm) or .npy depth registered to the image")
    ground.add_argument("--camera-info", help="camera calibration YAML")
    ground.add_argument("--depth-scale", type=float, default=0.001)
    ground.add_argument("--frame-id", default="camera_color_optical_frame")
    ground.add_argument("--base-frame", default="base_link")
    ground.add_argument("--camera-pose", type=float, nargs=6, default=[0.0] * 6,
                        metavar=("X", "Y", "Z", "ROLL", "PITCH", "YAW"),
                        help="camera body frame pose in the base frame")
    ground.add_argument("--json", action="store_true")
    ground.add_argument("--annotate", metavar="OUT.png")
    _add_backend_args(ground)

    sub.add_parser("node", help="run the ROS 2 node (pass --ros-args ... after it)")

    say = sub.add_parser("say", help="publish a text command and print the node's result")
    say.add_argument("text")
    say.add_argument("--node", default="/vlm_ros", help="the node's fully qualified name")
    say.add_argument("--wait", type=float, default=10.0)
    say.add_argument("--json", action="store_true")

    camera = sub.add_parser("camera", help="publish a photo as camera/image (+depth, info)")
    camera.add_argument("--image", required=True)
    camera.add_argument("--depth")
    camera.add_argument("--camera-info")
    camera.add_argument("--rate", type=float, default=10.0)
    camera.add_argument("--frame-id", default="camera_color_optical_frame")

    demo = sub.add_parser("demo", help="the closed loop in the MuJoCo sim (or --photo)")
    demo.add_argument("--out", default="out/demo")
    demo.add_argument("--seed", type=int, default=7)
    demo.add_argument("--photo", action="store_true",
                      help="ground a real photo through the node instead of the simulator")

    evaluate = sub.add_parser("eval", help="score the whole chain against ground truth")
    eval_kinds = evaluate.add_subparsers(dest="eval_kind", required=True)
    sim_eval = eval_kinds.add_parser("sim", help="MuJoCo scenes with graded referring expressions")
    sim_eval.add_argument("--scenes", type=int, default=20)
    sim_eval.add_argument("--seed", type=int, default=0)
    sim_eval.add_argument("--json", action="store_true")
    sim_eval.add_argument("--no-pick", action="store_true", help="ground only; skip the gripper")
    sim_eval.add_argument("--no-propose-from-depth", dest="propose_from_depth",
                          action="store_false",
                          help="turn off the node's depth proposals (on for the tabletop)")
    sim_eval.add_argument("--backend-options", default="",
                          help="the node's backend_options, e.g. '{tiles: 2}'")

    soak = sub.add_parser("soak", help="load/soak the node: 30 Hz RGB-D + a command burst")
    soak.add_argument("--minutes", type=float, default=1.0)
    soak.add_argument("--rate", type=float, default=30.0, help="camera frames per second")
    soak.add_argument("--commands-per-s", type=float, default=50.0)
    soak.add_argument("--json", action="store_true")

    bench = sub.add_parser("bench", help="benchmark the node over DDS: stages, first goal, "
                                         "tracked goal rate, dropped frames")
    bench.add_argument("--seconds", type=float, default=20.0, help="length of the follow phase")
    bench.add_argument("--commands", type=int, default=20, help="'grab the red cup' commands")
    bench.add_argument("--rate-hz", type=float, default=30.0, help="camera frames per second")
    bench.add_argument("--backend", default="", help="the node's backend (default: its own)")
    bench.add_argument("--model", default="")
    bench.add_argument("--device", default="", help="auto | cpu | cuda")
    bench.add_argument("--dtype", default="")
    bench.add_argument("--backend-options", default="",
                       help="the node's backend_options, e.g. '{tiles: 2}'")
    bench.add_argument("--json", action="store_true", help="print the report as JSON")
    bench.add_argument("--out", metavar="FILE", help="also write the JSON report here")

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
                "eval": cmd_eval, "soak": cmd_soak, "bench": cmd_bench,
                "transcribe": cmd_transcribe,
                "listen": cmd_listen}
    return handlers[args.command_name](args)


if __name__ == "__main__":
    raise SystemExit(main())
