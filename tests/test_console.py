"""`vlm-ros console` in a real browser against the real node over DDS (issue #15).

One vlm_ros node process (RosGraph: fed real photos by a PhotoCamera at 20 Hz), one console
process started as a user starts it (`vlm-ros console --port 0`), one headless Chromium driven
by Selenium (Debian's chromium + chromium-driver, scripts/ensure_chromium.sh; Selenium is given
/usr/bin/chromedriver so it never looks for a browser on the network).  The microphone is
Chromium's fake capture device playing an espeak-ng WAV of "grab the red cup".

What is measured where: STOP latency is from the click time the page records (``Date.now()`` in
the click handler, wall clock in ms) to the moment this test's own subscriber on ``/vlm_ros/stop``
receives the node's std_msgs/Empty (``time.time()`` in its callback); both run on this machine's
clock, so the figure covers the page, the websocket, the console node, DDS, the vlm_ros node's
command callback and DDS back again.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections import deque
from pathlib import Path
from typing import Any, Callable

import pytest

from vlm_ros.console.security import Access, is_loopback, split_host

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
CAMERA_POSE = "[0.0, 0.0, 1.0, 0.0, 0.0, 0.0]"


# ---------------------------------------------------------------------- access rules (no ROS)
def test_loopback_needs_no_token_unless_given() -> None:
    assert Access.for_bind("127.0.0.1").token is None
    assert Access.for_bind("::1").token is None
    assert Access.for_bind("127.0.0.1", "sesame-open").token == "sesame-open"


def test_any_other_address_gets_a_token() -> None:
    access = Access.for_bind("0.0.0.0")
    assert access.token and len(access.token) >= 16
    assert not access.token_ok(None) and not access.token_ok("") and not access.token_ok("x")
    assert access.token_ok(access.token)
    assert Access.for_bind("192.168.1.5", "sesame-open").token == "sesame-open"
    with pytest.raises(ValueError):
        Access.for_bind("0.0.0.0", "  ")


def test_host_and_origin_rules() -> None:
    local = Access.for_bind("127.0.0.1")
    assert local.host_ok("127.0.0.1:8080") and local.host_ok("localhost:8080")
    assert local.host_ok("[::1]:8080")
    assert not local.host_ok("evil.example:8080")  # DNS rebinding onto 127.0.0.1
    assert not local.host_ok(None)
    assert Access.for_bind("0.0.0.0").host_ok("evil.example:8080")  # the token guards it
    assert Access.origin_ok("http://127.0.0.1:8080", "127.0.0.1:8080")
    assert not Access.origin_ok("http://127.0.0.1:8081", "127.0.0.1:8080")
    assert not Access.origin_ok("http://evil.example", "127.0.0.1:8080")
    assert not Access.origin_ok(None, "127.0.0.1:8080")
    assert not Access.origin_ok("null", "127.0.0.1:8080")
    assert is_loopback("127.5.0.1") and not is_loopback("10.0.0.1")
    assert split_host("[::1]:80") == "::1" and split_host("a.b:80") == "a.b"


# ---------------------------------------------------------------------- the browser rig


def _require_browser() -> None:
    # An error, not a skip: a skipped browser test looks like a passing one in a CI summary.
    for path in (CHROMIUM, CHROMEDRIVER):
        if not os.path.exists(path):
            pytest.fail(f"{path} is missing: run bash scripts/ensure_chromium.sh "
                        "(apt-get install chromium chromium-driver)")
    for module in ("selenium", "aiohttp"):
        try:
            __import__(module)
        except ImportError:
            pytest.fail(f"{module} is not installed: bash scripts/bootstrap.sh "
                        "'...,test,console' (scripts/test.sh does)")


class ConsoleProcess:
    """`vlm-ros console ...` in its own process; its URL read from the first line it prints."""

    def __init__(self, *args: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "vlm_ros.cli", "console", "--port", "0", *args],
            env={**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}, cwd=ROOT,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.log: deque[str] = deque(maxlen=80)
        self._url = threading.Event()
        self.url = ""
        threading.Thread(target=self._read, daemon=True).start()
        if not self._url.wait(60.0):
            self.stop()
            raise RuntimeError("the console did not start:\n" + "\n".join(self.log))

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.log.append(line.rstrip())
            found = re.search(r"vlm-ros console: (http://\S+)", line)
            if found and not self.url:
                self.url = found.group(1)
                self._url.set()

    @property
    def port(self) -> int:
        return int(re.search(r":(\d+)/", self.url).group(1))

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)


def _speech_wav(folder: Path) -> Path:
    """"grab the red cup" from espeak-ng, 0.4 s of silence before and 1.2 s after, 16 kHz."""
    from voice_speech import pad, save, speak

    return save(folder / "grab_the_red_cup.wav", pad(speak("grab the red cup"), 0.4, 1.2))


def _chromium(fake_audio: Path) -> Any:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--window-size=1300,1000", "--use-fake-device-for-media-stream",
                 "--use-fake-ui-for-media-stream", "--autoplay-policy=no-user-gesture-required",
                 f"--use-file-for-fake-audio-capture={fake_audio}"):
        options.add_argument(flag)
    os.environ["SE_OFFLINE"] = "true"  # Selenium Manager must never go to the network
    return webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)


def _until(check: Callable[[], Any], timeout_s: float = 30.0, what: str = "") -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what or check}")


class Rig:
    def __init__(self, graph: Any, console: ConsoleProcess, browser: Any) -> None:
        self.graph, self.console, self.browser = graph, console, browser
        self.stop_times: list[float] = []

    def stats(self, key: str) -> Any:
        return self.browser.execute_script(f"return window.consoleStats.{key};")

    def text(self, element_id: str) -> str:
        return self.browser.find_element("id", element_id).text

    def type_command(self, text: str) -> None:
        from selenium.webdriver.common.keys import Keys

        box = self.browser.find_element("id", "command")
        box.clear()
        box.send_keys(text, Keys.ENTER)

    def wait_result(self, said: str, count_before: int, timeout_s: float = 30.0) -> dict:
        """The page's newest result once it answers ``said`` (typed or clicked)."""
        def answered() -> dict | None:
            if self.stats("results") <= count_before:
                return None
            result = self.stats("lastResult")
            text = ((result or {}).get("instruction") or {}).get("text") or ""
            return result if said in text else None
        return _until(answered, timeout_s, f"the page to show the answer to {said!r}")


@pytest.fixture(scope="module")
def rig(tmp_path_factory: pytest.TempPathFactory):
    pytest.importorskip("rclpy")
    _require_browser()
    from ros_harness import RosGraph
    from std_msgs.msg import Empty

    from vlm_ros import scenes

    graph = RosGraph(["-p", f"camera_pose_in_base:={CAMERA_POSE}",
                      "-p", "image_reliability:=reliable", "-p", "follow_rate_hz:=0.0"],
                     camera_rate_hz=20.0)
    rig_: Rig | None = None
    console = browser = None
    try:
        graph.show(*scenes.coffee())
        console = ConsoleProcess("--node", "vlm_ros")  # no leading slash: accepted
        browser = _chromium(_speech_wav(tmp_path_factory.mktemp("console")))
        rig_ = Rig(graph, console, browser)
        graph.listener.create_subscription(Empty, "/vlm_ros/stop",
                                           lambda _msg: rig_.stop_times.append(time.time()), 10)
        browser.get(console.url)
        _until(lambda: rig_.text("link") == "connected", 30, "the page to connect")
        yield rig_
    finally:
        if browser is not None:
            browser.quit()
        if console is not None:
            console.stop()
        graph.close()


# ---------------------------------------------------------------------- in the browser
@pytest.mark.ros
@pytest.mark.slow
def test_live_view_streams_at_least_10_fps(rig: Rig) -> None:
    # Steady state: the console loads its speech models at start (a few busy seconds).
    talk = rig.browser.find_element("id", "talk")
    _until(lambda: talk.is_enabled(), 120, "the speech models to load")
    start = rig.stats("cameraFrames")
    time.sleep(3.0)
    fps = (rig.stats("cameraFrames") - start) / 3.0
    assert fps >= 10.0, (f"{fps:.1f} camera frames/s drawn in the page; console: "
                         f"{rig.stats('camera')}, node: {rig.text('health-fps')}")
    # the health panel comes from the node's /diagnostics (1 Hz)
    _until(lambda: "frames/s" in rig.text("health-fps"), 10, "the health panel")
    assert rig.text("health-level") == "OK"
    assert "queued" in rig.text("health-queue")


@pytest.mark.ros
@pytest.mark.slow
def test_typed_command_is_answered_and_drawn(rig: Rig, tmp_path: Path) -> None:
    debug_before, results_before = rig.stats("debugFrames"), rig.stats("results")
    grasps = rig.graph.listener.count("grasp_pose")
    rig.type_command("grab the red cup")
    result = rig.wait_result("grab the red cup", results_before)
    assert result["status"] == "ok", result
    assert rig.text("answer-status") == "ok"
    assert "cup" in rig.text("answer-message")
    # the node really acted on it (a grasp over DDS) and the page shows its picture and boxes
    assert rig.graph.wait_for("grasp_pose", grasps + 1)
    _until(lambda: rig.stats("debugFrames") > debug_before, 10, "~/debug_image in the page")
    _until(lambda: rig.stats("overlay")["targets"] >= 1, 5, "the target drawn over the view")
    row = rig.browser.find_element("css selector", "#log tbody tr")
    assert "grab the red cup" in row.text and "ok" in row.text
    assert re.search(r"\d+ \(model \d+\)", row.text), row.text  # timing_ms: total (model)
    # the health panel's model time and result count come with the next /diagnostics (1 Hz)
    _until(lambda: "ms p50" in rig.text("health-model")
           and not rig.text("health-queue").endswith(" 0 results"), 5, "model time in health")
    # The README's picture: refreshed with VLM_ROS_UPDATE_DOCS=1 (a plain test run must not
    # rewrite a tracked file); otherwise taken all the same, into the test's temporary folder.
    shot = (ROOT / "docs" / "console.png" if os.environ.get("VLM_ROS_UPDATE_DOCS") == "1"
            else tmp_path / "console.png")
    assert rig.browser.save_screenshot(str(shot))
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 50_000


@pytest.mark.ros
@pytest.mark.slow
def test_memory_panel_lists_what_was_seen_and_goes_back_to_it(rig: Rig) -> None:
    # Issue #21: the node's ~/memory, listed; "go to" asks for it.  Issue #20: an ok the robot
    # acts on says so beside its status.
    before = rig.stats("results")
    rig.type_command("grab the red cup")
    assert rig.wait_result("grab the red cup", before)["status"] == "ok"
    assert rig.text("answer-acts") == "robot will act"
    item = _until(lambda: next(iter(rig.browser.find_elements(
        "css selector", "#memory-list li[data-label='cup']")), None), 10, "the cup in the memory")
    assert "red cup" in item.text and "s ago" in item.text
    goals = rig.graph.listener.count("goal_pose")
    before = rig.stats("results")
    item.find_element("css selector", "button").click()
    result = rig.wait_result("go back to the red cup", before)
    assert result["status"] == "ok" and result["instruction"]["action"] == "navigate", result
    assert rig.graph.wait_for("goal_pose", goals + 1)


@pytest.mark.ros
@pytest.mark.slow
def test_chinese_command_and_history_keys(rig: Rig) -> None:
    from selenium.webdriver.common.keys import Keys

    before = rig.stats("results")
    rig.type_command("抓取红色杯子")
    result = rig.wait_result("抓取红色杯子", before)
    assert result["status"] == "ok", result
    box = rig.browser.find_element("id", "command")
    box.send_keys(Keys.ARROW_UP)
    assert box.get_attribute("value") == "抓取红色杯子"
    box.send_keys(Keys.ARROW_UP)
    assert box.get_attribute("value") == "grab the red cup"
    box.send_keys(Keys.ARROW_DOWN)
    assert box.get_attribute("value") == "抓取红色杯子"
    box.clear()


@pytest.mark.ros
@pytest.mark.slow
def test_clarification_choices_are_buttons(rig: Rig) -> None:
    from vlm_ros import scenes

    rig.graph.show(*scenes.two_cups())
    try:
        before = rig.stats("results")
        rig.type_command("grab the cup")
        result = rig.wait_result("grab the cup", before)
        assert result["status"] == "ambiguous" and result["choices"], result
        assert rig.text("question") == result["clarification"]
        buttons = rig.browser.find_elements("css selector", "#choices button.choice")
        assert [b.text for b in buttons] == result["choices"]
        grasps = rig.graph.listener.count("grasp_pose")
        before = rig.stats("results")
        chosen = buttons[0].text
        buttons[0].click()
        answer = rig.wait_result(chosen, before)
        assert answer["status"] == "ok", answer
        assert rig.text("answer-status") == "ok"
        assert not rig.browser.find_elements("css selector", "#choices button.choice")
        assert rig.graph.wait_for("grasp_pose", grasps + 1)
    finally:
        rig.graph.show(*scenes.coffee())


@pytest.mark.ros
@pytest.mark.slow
def test_a_picks_mask_and_grasp_are_drawn(rig: Rig) -> None:
    """Issue #22: with real relief in depth (a MuJoCo render) the target's mask is measured and
    painted over the view, and its best grasp named on the caption."""
    pytest.importorskip("mujoco")
    from vlm_ros import scenes
    from vlm_ros.sim.scene import CameraSetup, generate_scene
    from vlm_ros.sim.world import SimWorld

    # The sim camera where the rig's node believes its camera is (CAMERA_POSE): 1 m up, level.
    camera = CameraSetup(pose_in_base=(0.0, 0.0, 1.0, 0.0, 0.0, 0.0))
    spec = generate_scene(5, layout=[("mug", "red"), ("ball", "blue")], camera=camera,
                          pinned={0: (0.62, 0.0)})
    with SimWorld(spec) as world:
        frame = world.frame()
    rig.graph.show(frame.rgb, frame.depth_m, frame.intrinsics)
    try:
        before = rig.stats("results")
        rig.type_command("grab the red cup")
        result = rig.wait_result("grab the red cup", before)
        assert result["targets"] and result["targets"][0]["mask"]["counts"], result
        assert result["grasps"], result
        _until(lambda: rig.stats("overlay")["masks"] >= 1, 5, "the mask drawn over the view")
        assert rig.stats("overlay")["grasps"] == len(result["grasps"])
    finally:
        rig.graph.show(*scenes.coffee())


@pytest.mark.ros
@pytest.mark.slow
def test_confirmation_yes_and_no(rig: Rig) -> None:
    from ros_harness import set_parameters

    assert all(r.successful for r in set_parameters(rig.graph.client,
                                                    {"confirm_before_motion": True}))
    try:
        for button, expected in (("confirm-yes", "ok"), ("confirm-no", None)):
            grasps = rig.graph.listener.count("grasp_pose")
            before = rig.stats("results")
            rig.type_command("grab the red cup")
            asked = rig.wait_result("grab the red cup", before)
            assert asked["status"] == "awaiting_confirmation", asked
            _until(lambda: rig.browser.find_element("id", "confirm").is_displayed(), 5,
                   "yes / no buttons")
            assert rig.graph.listener.count("grasp_pose") == grasps  # nothing moved yet
            before = rig.stats("results")
            rig.browser.find_element("id", button).click()
            said = "yes" if button == "confirm-yes" else "no"
            answer = rig.wait_result(said, before)
            assert not rig.browser.find_element("id", "confirm").is_displayed()
            if expected == "ok":
                assert answer["status"] == "ok", answer
                assert rig.graph.wait_for("grasp_pose", grasps + 1)
            else:
                assert answer["message"].startswith("cancelled") and not answer["goals"], answer
                time.sleep(0.5)
                assert rig.graph.listener.count("grasp_pose") == grasps
    finally:
        set_parameters(rig.graph.client, {"confirm_before_motion": False})


@pytest.mark.ros
@pytest.mark.slow
def test_stop_button_and_esc_each_reach_the_node(rig: Rig) -> None:
    """Every click and Esc reaches the node as a stop (it publishes ~/stop).  The latency, click
    to ~/stop received, is measured and printed (README: the figures; the 100 ms target is a
    measurement, not an assertion - timed asserts fail on a loaded CI machine, not on a slow
    console)."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.keys import Keys

    latencies = []
    for trial in range(10):
        clicks, stops = len(rig.stats("stopClicks")), len(rig.stop_times)
        if trial % 2 == 0:
            rig.browser.find_element("id", "stop").click()
        else:  # Esc, wherever the focus is
            ActionChains(rig.browser).send_keys(Keys.ESCAPE).perform()
        _until(lambda: len(rig.stop_times) > stops, 5, "~/stop from the node")
        clicked_ms = rig.stats("stopClicks")[clicks]
        latencies.append(rig.stop_times[stops] * 1000.0 - clicked_ms)
        time.sleep(0.3)
    print(f"\nSTOP click -> ~/stop received (ms): {[round(x, 1) for x in latencies]}; "
          f"median {statistics.median(latencies):.1f}, max {max(latencies):.1f}")
    assert len(latencies) == 10 and all(x > 0.0 for x in latencies), latencies
    _until(lambda: rig.stats("stopped"), 5, "the page to hear the node's ~/stop")


@pytest.mark.ros
@pytest.mark.slow
def test_push_to_talk_sends_the_spoken_command(rig: Rig) -> None:
    from selenium.webdriver.common.action_chains import ActionChains

    talk = rig.browser.find_element("id", "talk")
    _until(lambda: talk.is_enabled(), 120, "the speech models to load")
    before, voices = rig.stats("results"), len(rig.stats("voice"))
    ActionChains(rig.browser).click_and_hold(talk).perform()
    time.sleep(2.6)  # the fake microphone plays the 2.9 s file from its start
    ActionChains(rig.browser).release(talk).perform()
    heard = _until(lambda: rig.stats("voice")[voices:], 60, "the transcript")[0]
    assert heard["status"] == "sent", heard
    assert "red cup" in heard["command"].lower(), heard
    assert "sent" in rig.text("transcript")
    result = rig.wait_result("red cup", before)
    assert result["status"] == "ok", result


# ---------------------------------------------------------------------- access from outside
def _machine_ip() -> str | None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("10.255.255.255", 1))
            address = probe.getsockname()[0]
        except OSError:
            return None
    return None if is_loopback(address) else address


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any) -> None:
        return None


def _http_status(url: str, headers: dict[str, str] | None = None) -> int:
    """The status of a GET (redirects are not followed)."""
    opener = urllib.request.build_opener(_NoRedirect)
    try:
        with opener.open(urllib.request.Request(url, headers=headers or {}), timeout=10) as reply:
            return reply.status
    except urllib.error.HTTPError as error:
        return error.code


def _ws_status(url: str, origin: str | None, headers: dict[str, str] | None = None) -> int:
    """101 when the websocket opened (and said hello), else the handshake's HTTP status."""
    import aiohttp

    async def attempt() -> int:
        async with aiohttp.ClientSession() as session:
            try:
                extra = {**({"Origin": origin} if origin else {}), **(headers or {})}
                async with session.ws_connect(url, headers=extra,
                                              timeout=aiohttp.ClientWSTimeout(ws_close=10)
                                              ) as ws:
                    hello = await ws.receive_json(timeout=10)
                    assert hello["type"] == "hello"
                    return 101
            except aiohttp.WSServerHandshakeError as error:
                return error.status

    return asyncio.run(attempt())


@pytest.mark.ros
@pytest.mark.slow
def test_a_slow_browser_gets_fewer_frames_not_a_backlog(rig: Rig) -> None:
    """Flow control: without an acknowledgement no second frame is sent (for 2 s), and each
    acknowledgement releases exactly the newest frame."""
    import aiohttp

    port = rig.console.port

    async def slow_reader() -> list[int]:
        frames = []
        async with aiohttp.ClientSession() as session, session.ws_connect(
                f"ws://127.0.0.1:{port}/ws", headers={"Origin": f"http://127.0.0.1:{port}"}) as ws:
            for phase in range(3):  # 1.5 s without ack, then ack and 0.5 s, twice
                count, deadline = 0, time.monotonic() + (1.5 if phase == 0 else 0.5)
                while (left := deadline - time.monotonic()) > 0:
                    try:
                        message = await ws.receive(timeout=left)
                    except asyncio.TimeoutError:
                        break
                    if message.type == aiohttp.WSMsgType.BINARY:
                        count += 1
                frames.append(count)
                await ws.send_json({"type": "ack"})
        return frames

    assert asyncio.run(slow_reader()) == [1, 1, 1]


@pytest.mark.ros
@pytest.mark.slow
def test_other_address_needs_the_token(rig: Rig) -> None:
    address = _machine_ip()
    bind = address or "0.0.0.0"
    reach = address or "127.0.0.1"
    outside = ConsoleProcess("--host", bind, "--no-voice")  # no --token: one is made, printed
    try:
        token = re.search(r"\?token=(\S+)", outside.url).group(1)
        assert len(token) >= 16
        _until(lambda: any(f"token {token}" in line for line in outside.log), 5, "the token line")
        base = f"http://{reach}:{outside.port}"
        assert _http_status(f"{base}/") == 401
        assert _http_status(f"{base}/?token=wrong-token") == 401
        assert _http_status(f"{base}/static/console.js") == 401
        assert _http_status(f"{base}/?token={token}") == 303  # -> "/" with the token cookie
        assert _http_status(f"{base}/", {"Cookie": f"vlm_console_token={token}"}) == 200
        assert _http_status(f"{base}/", {"Cookie": "vlm_console_token=wrong-token"}) == 401
        origin = f"http://{reach}:{outside.port}"
        assert _ws_status(f"ws://{reach}:{outside.port}/ws", origin) == 401
        assert _ws_status(f"ws://{reach}:{outside.port}/ws?token=nope", origin) == 401
        assert _ws_status(f"ws://{reach}:{outside.port}/ws", origin,
                          {"Authorization": f"Bearer {token}"}) == 101
        # in the browser: no page without the token, the working console with it
        browser = rig.browser
        browser.get(f"{base}/?token=wrong-token")
        assert "401" in browser.find_element("tag name", "body").text
        assert not browser.find_elements("id", "stop")
        browser.get(f"{base}/?token={token}")
        assert browser.current_url == f"{base}/"  # the token went into a cookie
        _until(lambda: rig.text("link") == "connected", 30, "the page to connect")
        before = rig.stats("results")
        rig.type_command("grab the red cup")
        assert rig.wait_result("grab the red cup", before)["status"] == "ok"
    finally:
        outside.stop()
        rig.browser.get(rig.console.url)


_OPEN_WS = """
    const done = arguments[arguments.length - 1];
    const ws = new WebSocket(arguments[0]);
    ws.onopen = () => { done("open"); ws.close(); };
    ws.onclose = (event) => done("closed " + event.code);
    setTimeout(() => done("no answer"), 10000);"""


@pytest.mark.ros
@pytest.mark.slow
def test_cross_origin_websocket_is_refused(rig: Rig) -> None:
    port = rig.console.port
    browser = rig.browser
    if browser.current_url != rig.console.url:
        browser.get(rig.console.url)
    # The console's own page opens its websocket (its CSP allows only that one) ...
    assert browser.execute_async_script(_OPEN_WS, f"ws://127.0.0.1:{port}/ws") == "open"
    # ... and a page of another site open in the same browser (here a plain server on another
    # port: another origin, no CSP of ours) is refused by the console at the handshake.
    import http.server

    class OtherSite(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            body = b"<!doctype html><title>another site</title><p>another site"
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    other = http.server.ThreadingHTTPServer(("127.0.0.1", 0), OtherSite)
    threading.Thread(target=other.serve_forever, daemon=True).start()
    try:
        browser.get(f"http://127.0.0.1:{other.server_address[1]}/")
        assert browser.execute_async_script(_OPEN_WS, f"ws://127.0.0.1:{port}/ws") == \
            "closed 1006"
    finally:
        other.shutdown()
        other.server_close()
        browser.get(rig.console.url)
    local = f"ws://127.0.0.1:{port}/ws"
    assert _ws_status(local, "http://evil.example") == 403
    assert _ws_status(local, f"http://localhost:{port}") == 403
    assert _ws_status(local, None) == 403  # no Origin at all
    assert _ws_status(local, f"http://127.0.0.1:{port}") == 101
    # and a DNS-rebinding page (Host: evil.example) gets nothing from the loopback console
    assert _http_status(f"http://127.0.0.1:{port}/", {"Host": f"evil.example:{port}"}) == 403


def test_ensure_chromium_script_exists() -> None:
    script = ROOT / "scripts" / "ensure_chromium.sh"
    assert script.is_file() and "chromium-driver" in script.read_text()
    assert "ensure_chromium.sh" in (ROOT / "scripts" / "test.sh").read_text()
    assert shutil.which("bash")
