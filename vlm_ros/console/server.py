"""The console's web server (aiohttp) and how `vlm-ros console` runs it.

One page (``static/``), one websocket (``/ws``) per browser:

browser -> server (JSON text): ``command`` {text}, ``stop`` {clicked_at}, ``ack`` (a frame was
drawn), ``talk_start`` {rate}, then binary PCM16 mono chunks, ``talk_end`` / ``talk_cancel``.

server -> browser: ``hello`` (the node, the voice state, the recent results), ``result``,
``sent`` (a command went out on ``~/command``), ``stop_sent`` (with the click, arrival and
publish times), ``stopped`` (the node's ``~/stop`` came back), ``health``, ``voice`` (a
transcript and the gate's decision), ``status``; binary frames are one byte of source (1 camera,
2 debug image) followed by a JPEG.

Frames are flow-controlled per browser: a new frame is sent only after the browser acknowledged
drawing the previous one (or 2 s passed); until then only the newest frame of each source is kept,
so a slow browser gets fewer frames, never a growing backlog.  Access rules: security.py.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import json
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

from aiohttp import WSMsgType, web

from vlm_ros.console.security import COOKIE, Access
from vlm_ros.console.voice import MAX_RECORDING_S

STATIC = Path(__file__).resolve().parent / "static"
FRAME_SOURCES = {"camera": 1, "debug": 2}
ACK_TIMEOUT_S = 2.0
HISTORY = 50  # results replayed to a browser that connects
MAX_COMMAND_CHARS = 1000
MAX_MESSAGES = 1000  # queued JSON messages per browser before the oldest are dropped
CONTENT_TYPES = {".html": "text/html", ".js": "text/javascript", ".css": "text/css",
                 ".png": "image/png", ".svg": "image/svg+xml"}
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' blob: data:; "
                               "connect-src 'self'; media-src 'self' blob:; "
                               "frame-ancestors 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


class _Browser:
    """One connected page: its queued messages, newest frame per source, flow control."""

    def __init__(self, ws: web.WebSocketResponse) -> None:
        self.ws = ws
        self.messages: collections.deque[str] = collections.deque(maxlen=MAX_MESSAGES)
        self.frames: dict[str, bytes] = {}
        self.in_flight = False
        self.sent_at = 0.0
        self.wake = asyncio.Event()
        self.audio: bytearray | None = None
        self.audio_rate = 0
        self.frames_sent = 0


class ConsoleServer:
    """The aiohttp application around one ConsoleNode (bridge.py) and optional voice."""

    def __init__(self, access: Access, voice: Any = None) -> None:
        self.access = access
        self.voice = voice
        self.node: Any = None  # ConsoleNode, attached before serving
        self.browsers: set[_Browser] = set()
        self.history: collections.deque[dict[str, Any]] = collections.deque(maxlen=HISTORY)
        self.health: dict[str, Any] | None = None
        self.memory: dict[str, Any] | None = None  # the node's latest ~/memory
        self.loop: asyncio.AbstractEventLoop | None = None
        self._voice_pool = concurrent.futures.ThreadPoolExecutor(1, "console-voice")
        self.app = web.Application(middlewares=[self._guard], client_max_size=1 << 20)
        self.app.router.add_get("/", self._index)
        self.app.router.add_get("/static/{name}", self._static)
        self.app.router.add_get("/ws", self._websocket)

    # ------------------------------------------------------------------ from ROS (any thread)
    def emit(self, kind: str, payload: Any) -> None:
        """Thread-safe: the ConsoleNode's callbacks hand their messages over here."""
        loop = self.loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._dispatch, kind, payload)

    def _dispatch(self, kind: str, payload: Any) -> None:
        if kind == "frame":
            source, data = payload
            for browser in self.browsers:
                browser.frames[source] = data
                browser.wake.set()
            return
        if kind == "result":
            payload = {**payload, "received_at": time.time()}
            self.history.append(payload)
            self._broadcast({"type": "result", "result": payload})
        elif kind == "stop":
            self._broadcast({"type": "stopped", **payload})
        elif kind == "health":
            self.health = payload
            self._broadcast({"type": "health", "health": payload})
        elif kind == "memory":
            self.memory = payload
            self._broadcast({"type": "memory", "memory": payload})

    def _broadcast(self, message: dict[str, Any]) -> None:
        text = json.dumps(message, ensure_ascii=False)
        for browser in self.browsers:
            browser.messages.append(text)
            browser.wake.set()

    def _send(self, browser: _Browser, message: dict[str, Any]) -> None:
        browser.messages.append(json.dumps(message, ensure_ascii=False))
        browser.wake.set()

    # ------------------------------------------------------------------ HTTP
    def _token_from(self, request: web.Request) -> str | None:
        auth = request.headers.get("Authorization", "")
        if auth.startswith("Bearer "):
            return auth[7:].strip()
        return request.query.get("token") or request.cookies.get(COOKIE)

    @web.middleware
    async def _guard(self, request: web.Request, handler: Any) -> web.StreamResponse:
        if not self.access.host_ok(request.headers.get("Host")):
            response: web.StreamResponse = web.Response(
                status=403, text="403: this console answers only to localhost / 127.0.0.1\n")
        elif not self.access.token_ok(self._token_from(request)):
            response = web.Response(
                status=401, text="401: this console needs its token: open the URL printed "
                                 "when it started (http://HOST:PORT/?token=...)\n")
        else:
            response = await handler(request)
        if not response.prepared:
            response.headers.update(SECURITY_HEADERS)
        return response

    async def _index(self, request: web.Request) -> web.StreamResponse:
        if "token" in request.query:  # valid (the guard checked): keep it in a cookie, drop it
            response = web.HTTPSeeOther("/")  # from the address bar and the history
            response.set_cookie(COOKIE, request.query["token"], httponly=True,
                                samesite="Strict", path="/")
            return response
        return self._file("index.html")

    async def _static(self, request: web.Request) -> web.StreamResponse:
        return self._file(request.match_info["name"])

    def _file(self, name: str) -> web.StreamResponse:
        path = (STATIC / name).resolve()
        if path.parent != STATIC or not path.is_file() or path.suffix not in CONTENT_TYPES:
            return web.Response(status=404, text="404\n")
        return web.Response(body=path.read_bytes(), content_type=CONTENT_TYPES[path.suffix],
                            charset="utf-8" if path.suffix != ".png" else None)

    # ------------------------------------------------------------------ websocket
    async def _websocket(self, request: web.Request) -> web.StreamResponse:
        # The guard has checked host and token; a websocket must also come from this very page.
        if not Access.origin_ok(request.headers.get("Origin"), request.headers.get("Host")):
            return web.Response(status=403, text="403: cross-origin websocket refused\n")
        ws = web.WebSocketResponse(heartbeat=20.0, max_msg_size=1 << 20)
        await ws.prepare(request)
        browser = _Browser(ws)
        self.browsers.add(browser)
        self._set_watching()
        self._send(browser, self._hello())
        sender = asyncio.ensure_future(self._sender(browser))
        try:
            async for message in ws:
                if message.type == WSMsgType.TEXT:
                    await self._on_text(browser, message.data)
                elif message.type == WSMsgType.BINARY:
                    self._on_audio(browser, message.data)
        finally:
            self.browsers.discard(browser)
            self._set_watching()
            sender.cancel()
        return ws

    def _set_watching(self) -> None:
        if self.node is not None:
            self.node.watching = bool(self.browsers)

    def _hello(self) -> dict[str, Any]:
        node = self.node
        return {"type": "hello", "node": node.target if node else "",
                "camera_topic": node.camera_topic if node else "",
                "node_seen": bool(node and node.node_seen()),
                "voice": self.voice.status() if self.voice else {"state": "off", "reason": ""},
                "history": list(self.history), "health": self.health, "memory": self.memory,
                "token_required": self.access.token is not None, "server_time": time.time()}

    async def _sender(self, browser: _Browser) -> None:
        ws = browser.ws
        while not ws.closed:
            try:
                await asyncio.wait_for(browser.wake.wait(), 0.5)
            except asyncio.TimeoutError:
                pass
            browser.wake.clear()
            try:
                while browser.messages:
                    await ws.send_str(browser.messages.popleft())
                now = time.monotonic()
                if browser.in_flight and now - browser.sent_at < ACK_TIMEOUT_S:
                    continue  # the browser is still drawing: newer frames replace older ones
                source = "debug" if "debug" in browser.frames else (
                    "camera" if "camera" in browser.frames else None)
                if source is not None:
                    data = browser.frames.pop(source)
                    await ws.send_bytes(bytes([FRAME_SOURCES[source]]) + data)
                    browser.in_flight, browser.sent_at = True, now
                    browser.frames_sent += 1
            except (ConnectionResetError, RuntimeError):
                return

    async def _on_text(self, browser: _Browser, data: str) -> None:
        try:
            message = json.loads(data)
            kind = message.get("type")
        except (ValueError, AttributeError):
            self._send(browser, {"type": "error", "message": "not a JSON object"})
            return
        if kind == "ack":
            browser.in_flight = False
            browser.wake.set()
        elif kind == "stop":
            received = time.time()
            published = self.node.send_command("stop")  # first: nothing may delay a stop
            self._send(browser, {"type": "stop_sent", "clicked_at": message.get("clicked_at"),
                                 "received_at": received, "published_at": published})
        elif kind == "command":
            text = message.get("text")
            if not isinstance(text, str) or not text.strip():
                self._send(browser, {"type": "error", "message": "empty command"})
            elif len(text) > MAX_COMMAND_CHARS:
                self._send(browser, {"type": "error",
                                     "message": f"command longer than {MAX_COMMAND_CHARS} "
                                                "characters"})
            else:
                self._publish(browser, text.strip(), message.get("via", "typed"))
        elif kind == "talk_start":
            rate = message.get("rate")
            browser.audio = bytearray() if isinstance(rate, int) and rate > 0 else None
            browser.audio_rate = rate if browser.audio is not None else 0
        elif kind == "talk_cancel":
            browser.audio = None
        elif kind == "talk_end":
            await self._talk_end(browser)
        else:
            self._send(browser, {"type": "error", "message": f"unknown message {kind!r}"})

    def _publish(self, browser: _Browser, text: str, via: str) -> None:
        at = self.node.send_command(text)
        self._send(browser, {"type": "sent", "text": text, "via": via, "at": at})

    def _on_audio(self, browser: _Browser, data: bytes) -> None:
        if browser.audio is None:
            return
        if len(browser.audio) + len(data) <= MAX_RECORDING_S * browser.audio_rate * 2:
            browser.audio.extend(data)

    async def _talk_end(self, browser: _Browser) -> None:
        audio, rate, browser.audio = browser.audio, browser.audio_rate, None
        if audio is None:
            return
        if self.voice is None or self.voice.state != "ready":
            state = self.voice.status() if self.voice else {"state": "off", "reason": ""}
            self._send(browser, {"type": "voice", "status": "error",
                                 "message": f"voice is {state['state']} {state['reason']}"})
            return
        loop = asyncio.get_running_loop()
        try:
            result = await loop.run_in_executor(self._voice_pool, self.voice.recognise,
                                                bytes(audio), rate)
        except ValueError as exc:  # AudioError
            result = {"status": "error", "message": str(exc)}
        self._send(browser, {"type": "voice", **result,
                             "recorded_s": round(len(audio) / 2 / max(1, rate), 2)})
        if result.get("status") == "sent" and result.get("command"):
            self._publish(browser, result["command"], "voice")

    async def status_loop(self) -> None:
        """Once a second: does the node read our commands; the voice state (it loads late)."""
        counts = (time.monotonic(), self.node.camera_frames, self.node.camera_forwarded)
        while True:
            await asyncio.sleep(1.0)
            now = (time.monotonic(), self.node.camera_frames, self.node.camera_forwarded)
            span = max(1e-3, now[0] - counts[0])
            camera = {"received_fps": round((now[1] - counts[1]) / span, 1),
                      "forwarded_fps": round((now[2] - counts[2]) / span, 1),
                      "max_fps": self.node.max_fps}
            counts = now
            if self.browsers:
                self._broadcast({"type": "status", "node_seen": self.node.node_seen(),
                                 "camera": camera,
                                 "voice": self.voice.status() if self.voice
                                 else {"state": "off", "reason": ""}})

    def close(self) -> None:
        self._voice_pool.shutdown(wait=False, cancel_futures=True)


# ---------------------------------------------------------------------- running it
def console_url(host: str, port: int, token: str | None) -> str:
    shown = f"[{host}]" if ":" in host else host
    if host in ("0.0.0.0", "::"):
        shown = _machine_address()
    return f"http://{shown}:{port}/" + (f"?token={token}" if token else "")


def _machine_address() -> str:
    """This machine's address on its network (for the URL printed when bound to 0.0.0.0)."""
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("10.255.255.255", 1))  # no packet is sent: only picks the interface
            return probe.getsockname()[0]
        except OSError:
            return "127.0.0.1"


def run_console(node: str = "/vlm_ros", host: str = "127.0.0.1", port: int = 8080,
                token: str | None = None, camera_topic: str | None = None,
                max_fps: float = 15.0, voice_settings: Any = None, voice: bool = True,
                ready: threading.Event | None = None) -> int:
    """Serve the console until SIGINT / SIGTERM.  rclpy is initialised here unless it already
    is (`vlm-ros demo --console` runs the node and the simulator in this process too)."""
    import rclpy
    from rclpy.executors import SingleThreadedExecutor

    from vlm_ros.console.bridge import ConsoleNode
    from vlm_ros.console.voice import BrowserVoice
    from vlm_ros.ros.run import end_signal_handling, shutdown_rclpy

    access = Access.for_bind(host, token)
    browser_voice = BrowserVoice(voice_settings) if voice else None
    server = ConsoleServer(access, browser_voice)
    owns_rclpy = not rclpy.ok()
    if owns_rclpy:
        rclpy.init()
    console = ConsoleNode(server.emit, node, camera_topic, max_fps)
    server.node = console
    executor = SingleThreadedExecutor()
    executor.add_node(console)
    spinner = threading.Thread(target=executor.spin, daemon=True)
    if browser_voice is not None:
        threading.Thread(target=browser_voice.load, daemon=True, name="voice-load").start()

    async def serve() -> None:
        server.loop = asyncio.get_running_loop()
        runner = web.AppRunner(server.app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, host, port)
        await site.start()
        bound = runner.addresses[0][1] if runner.addresses else port
        spinner.start()
        print(f"vlm-ros console: {console_url(host, bound, access.token)}  (node "
              f"{console.target}, camera {console.camera_topic or 'off'})", flush=True)
        if access.token:
            print(f"vlm-ros console: token {access.token} (needed: bound to {host})", flush=True)
        stop = asyncio.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            server.loop.add_signal_handler(sig, stop.set)
        if ready is not None:
            ready.set()
        status = asyncio.ensure_future(server.status_loop())
        try:
            await stop.wait()
        finally:
            status.cancel()
            for browser in list(server.browsers):
                await browser.ws.close()
            await runner.cleanup()

    try:
        asyncio.run(serve())
    except OSError as exc:  # the port is taken, the address is not this machine's
        print(f"vlm-ros console: error: cannot serve on {host}:{port}: {exc.strerror or exc}",
              file=sys.stderr)
        return 2
    finally:
        if owns_rclpy:
            end_signal_handling()
        server.close()
        executor.shutdown()
        if spinner.is_alive():
            spinner.join(timeout=5.0)
        console.destroy_node()
        if owns_rclpy:
            shutdown_rclpy()
    return 0
