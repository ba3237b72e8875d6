// vlm_ros console: one websocket to the console server (vlm_ros/console/server.py).
"use strict";

const $ = (id) => document.getElementById(id);
const SOURCES = { 1: "camera", 2: "debug" };
const HISTORY_KEY = "vlm_console_history";

// What the page did, for people (the health panel) and for the browser tests.
const stats = {
  framesDrawn: 0, cameraFrames: 0, debugFrames: 0, frameTimes: [],
  results: 0, lastResult: null, overlay: { targets: 0, candidates: 0 },
  stopClicks: [], stopSent: [], stopped: [], sent: [], voice: [],
};
window.consoleStats = stats;

let ws = null;
let lastResult = null;
let liveFrameAt = 0;
let history = [];
try { history = JSON.parse(localStorage.getItem(HISTORY_KEY) || "[]"); } catch (e) { history = []; }
let historyIndex = history.length;

// ------------------------------------------------------------------ websocket
function connect() {
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  ws = new WebSocket(`${scheme}://${location.host}/ws`);
  ws.binaryType = "arraybuffer";
  ws.onopen = () => setLink("connected", "ok");
  ws.onclose = () => { setLink("disconnected", "bad"); setTimeout(connect, 1000); };
  ws.onmessage = (event) => {
    if (typeof event.data === "string") onMessage(JSON.parse(event.data));
    else onFrame(event.data);
  };
}

function send(message) {
  if (ws && ws.readyState === WebSocket.OPEN) { ws.send(JSON.stringify(message)); return true; }
  return false;
}

function setLink(text, cls) { const el = $("link"); el.textContent = text; el.className = `badge ${cls}`; }

function onMessage(m) {
  switch (m.type) {
    case "hello":
      $("node").textContent = `node ${m.node}` + (m.camera_topic ? ` · camera ${m.camera_topic}` : "");
      (m.history || []).forEach((r) => addLog(r));
      if (m.history && m.history.length) showResult(m.history[m.history.length - 1]);
      if (m.health) showHealth(m.health);
      if (m.memory) showMemory(m.memory);
      showVoice(m.voice);
      showNodeSeen(m.node_seen);
      break;
    case "status":
      showVoice(m.voice); showNodeSeen(m.node_seen);
      stats.camera = m.camera;
      $("health-console").textContent = `${m.camera.received_fps} frames/s in · ${m.camera.forwarded_fps} sent (max ${m.camera.max_fps})`;
      break;
    case "result": stats.results++; addLog(m.result); showResult(m.result); break;
    case "health": showHealth(m.health); break;
    case "memory": showMemory(m.memory); break;
    case "sent": stats.sent.push(m); break;
    case "stop_sent": stats.stopSent.push(m); break;
    case "stopped":
      stats.stopped.push(m);
      $("stopped").classList.remove("hidden");
      setTimeout(() => $("stopped").classList.add("hidden"), 3000);
      break;
    case "voice": showTranscript(m); break;
    case "error": $("transcript").textContent = `error: ${m.message}`; break;
  }
}

function showNodeSeen(seen) {
  if (ws && ws.readyState === WebSocket.OPEN) setLink(seen ? "connected" : "node not found", seen ? "ok" : "warn");
}

// ------------------------------------------------------------------ frames and overlay
async function onFrame(buffer) {
  const source = SOURCES[new Uint8Array(buffer, 0, 1)[0]] || "camera";
  const blob = new Blob([buffer.slice(1)], { type: "image/jpeg" });
  try {
    if (source === "debug") {
      stats.debugFrames++;
      const old = $("debug").src;
      $("debug").src = URL.createObjectURL(blob);
      if (old.startsWith("blob:")) URL.revokeObjectURL(old);
      if (performance.now() - liveFrameAt > 2000) await drawFrame(blob, false);  // no camera
    } else {
      stats.cameraFrames++;
      liveFrameAt = performance.now();
      await drawFrame(blob, true);
    }
  } finally {
    send({ type: "ack" });  // flow control: the server sends the next frame after this
  }
}

async function drawFrame(blob, overlay) {
  const bitmap = await createImageBitmap(blob);
  const canvas = $("live");
  if (canvas.width !== bitmap.width || canvas.height !== bitmap.height) {
    canvas.width = bitmap.width; canvas.height = bitmap.height;
  }
  const ctx = canvas.getContext("2d");
  ctx.drawImage(bitmap, 0, 0);
  bitmap.close();
  if (overlay) drawOverlay(ctx, canvas.width, canvas.height);
  stats.framesDrawn++;
  const now = performance.now();
  stats.frameTimes.push(now);
  while (stats.frameTimes.length && now - stats.frameTimes[0] > 2000) stats.frameTimes.shift();
  $("health-view").textContent = `${(stats.frameTimes.length / 2).toFixed(1)} frames/s drawn`;
}

// The target's mask (run lengths inside its box, README "result schema") as a tinted layer,
// decoded once per result.
let maskLayer = { result: null, canvas: null };
function maskCanvas(r, iw, ih) {
  if (maskLayer.result === r) return maskLayer.canvas;
  maskLayer = { result: r, canvas: null };
  const masked = [...(r.targets || []), ...(r.destination ? [r.destination] : [])]
    .filter((c) => c.mask && c.mask.counts && c.mask.counts.length);
  if (!masked.length) return null;
  const layer = document.createElement("canvas");
  layer.width = iw; layer.height = ih;
  const lctx = layer.getContext("2d");
  const image = lctx.createImageData(iw, ih);
  for (const c of masked) {
    const [x0, y0, w] = c.mask.box;
    const tint = c === r.destination ? [47, 123, 255] : [0, 208, 90];
    let at = 0, inside = false;
    for (const run of c.mask.counts) {
      if (inside) {
        for (let k = at; k < at + run; k++) {
          const i = 4 * ((y0 + Math.floor(k / w)) * iw + x0 + (k % w));
          image.data[i] = tint[0]; image.data[i + 1] = tint[1]; image.data[i + 2] = tint[2];
          image.data[i + 3] = 110;
        }
      }
      at += run; inside = !inside;
    }
  }
  lctx.putImageData(image, 0, 0);
  maskLayer.canvas = layer;
  return layer;
}

function drawOverlay(ctx, width, height) {
  const r = lastResult;
  stats.overlay = { targets: 0, candidates: 0, masks: 0, grasps: 0 };
  if (!r) return;
  const [iw, ih] = r.image_size || [width, height];
  const sx = width / iw, sy = height / ih;
  const layer = maskCanvas(r, iw, ih);
  if (layer) {
    ctx.drawImage(layer, 0, 0, width, height);
    stats.overlay.masks = (r.targets || []).filter((t) => t.mask).length
      + (r.destination && r.destination.mask ? 1 : 0);
  }
  const box = (c, colour, lineWidth, label) => {
    if (!c || !c.bbox) return;
    const [x1, y1, x2, y2] = c.bbox;
    ctx.strokeStyle = colour; ctx.lineWidth = lineWidth;
    ctx.strokeRect(x1 * sx, y1 * sy, (x2 - x1) * sx, (y2 - y1) * sy);
    if (label) {
      ctx.font = "bold 14px system-ui, sans-serif";
      const w = ctx.measureText(label).width + 8;
      ctx.fillStyle = colour; ctx.fillRect(x1 * sx, Math.max(0, y1 * sy - 18), w, 18);
      ctx.fillStyle = "#fff"; ctx.fillText(label, x1 * sx + 4, Math.max(13, y1 * sy - 5));
    }
  };
  const chosen = new Set((r.targets || []).map((t) => t.id));
  for (const c of r.candidates || []) {
    if (chosen.has(c.id)) continue;
    box(c, "rgba(255,210,0,0.9)", 2, `${c.label} ${(c.score || 0).toFixed(2)}`);
    stats.overlay.candidates++;
  }
  const grasps = r.grasps || [];
  stats.overlay.grasps = grasps.length;
  for (const t of r.targets || []) {
    // The best grasp in words on the target's caption (its pose is in the base frame).
    const grasp = grasps.length
      ? ` · grasp ${grasps[0].strategy.replace("_", " ")} ${grasps[0].width_m.toFixed(3)} m`
        + (grasps.length > 1 ? ` (${grasps.length} candidates)` : "")
      : "";
    box(t, "#00d05a", 4,
        `${t.color ? t.color + " " : ""}${t.label} ${(t.score || 0).toFixed(2)}${grasp}`);
    stats.overlay.targets++;
  }
  if (r.destination) box(r.destination, "#2f7bff", 4, `→ ${r.destination.label}`);
  ctx.font = "bold 16px system-ui, sans-serif";
  const text = `${r.status}: ${(r.message || "").slice(0, 90)}`;
  ctx.fillStyle = "rgba(0,0,0,0.6)";
  ctx.fillRect(0, height - 26, Math.min(width, ctx.measureText(text).width + 16), 26);
  ctx.fillStyle = r.status === "ok" ? "#7dff9f" : "#ffd24d";
  ctx.fillText(text, 8, height - 8);
}

// ------------------------------------------------------------------ answers
function showResult(r) {
  lastResult = r;
  stats.lastResult = r;
  const status = $("answer-status");
  status.textContent = r.status; status.className = `badge ${r.status}`;
  // An ok the robot will not act on (no 3D point, no calibration) says so next to the status.
  const acts = $("answer-acts");
  const shown = r.status === "ok" && (r.will_act || Boolean(r.no_goal_reason));
  acts.className = `badge ${r.will_act ? "acts" : "warn"}${shown ? "" : " hidden"}`;
  acts.textContent = r.will_act ? "robot will act" : "robot will NOT act";
  acts.title = r.no_goal_reason || "";
  $("answer-message").textContent = r.message || "";
  $("question").textContent = r.clarification || "";
  const choices = $("choices");
  choices.replaceChildren();
  const confirming = r.status === "awaiting_confirmation";
  $("confirm").classList.toggle("hidden", !confirming);
  if (!confirming && r.status === "ambiguous") {
    for (const choice of r.choices || []) {
      const button = document.createElement("button");
      button.type = "button"; button.className = "choice"; button.textContent = choice;
      button.addEventListener("click", () => answer(choice));
      choices.appendChild(button);
    }
  }
  $("status").textContent = `${r.status}: ${r.message || ""}`;
}

// ------------------------------------------------------------------ memory
// What the robot has seen, newest first; "go to" asks the node to go back to it (a goal from
// memory: the node checks its age and the safety gate, and says why when it will not).
function showMemory(memory) {
  const objects = (memory && memory.objects) || [];
  $("memory-count").textContent = String(objects.length);
  const list = $("memory-list");
  list.replaceChildren();
  for (const obj of objects) {
    const what = obj.color ? `${obj.color} ${obj.label}` : obj.label;
    const [x, y, z] = obj.position;
    const item = document.createElement("li");
    item.dataset.label = obj.label;
    item.textContent = `${what} (${x.toFixed(2)}, ${y.toFixed(2)}, ${z.toFixed(2)}) m, ` +
      `${Math.round(obj.age_s || 0)} s ago `;
    const go = document.createElement("button");
    go.type = "button"; go.className = "choice"; go.textContent = "go to";
    go.addEventListener("click", () => sendCommand(`go back to the ${what}`, "memory"));
    item.appendChild(go);
    list.appendChild(item);
  }
}

function answer(text) {
  $("choices").replaceChildren();
  $("confirm").classList.add("hidden");
  sendCommand(text, "button");
}

function addLog(r) {
  const row = document.createElement("tr");
  row.dataset.status = r.status;
  const t = r.timing_ms || {};
  const when = r.received_at ? new Date(r.received_at * 1000).toLocaleTimeString() : "";
  const said = (r.instruction && r.instruction.text) || "";
  const timing = t.total !== undefined ? `${t.total.toFixed(0)}` + (t.model !== undefined ? ` (model ${t.model.toFixed(0)})` : "") : "";
  for (const text of [when, said, r.status, r.message || "", timing]) {
    const cell = document.createElement("td"); cell.textContent = text; row.appendChild(cell);
  }
  row.title = JSON.stringify(t);
  const body = document.querySelector("#log tbody");
  body.insertBefore(row, body.firstChild);
  while (body.children.length > 100) body.removeChild(body.lastChild);
}

function showHealth(h) {
  const level = ["OK", "WARN", "ERROR", "STALE"][h.level] || String(h.level);
  const badge = $("health-level");
  badge.textContent = level; badge.className = `badge ${["ok", "warn", "bad", "bad"][h.level] || ""}`;
  $("health-fps").textContent = h.camera_fps === null ? "-" : `${h.camera_fps} frames/s`;
  $("health-model").textContent = h.model_ms_p50 === null ? "-" : `${h.model_ms_p50} ms p50 · ${h.model_ms_p95} ms p95`;
  $("health-queue").textContent = `${h.queued_commands} queued · ${h.commands} commands · ${h.results} results`
    + (h.following ? " · following" : "") + (h.tracking ? " · tracking" : "");
  $("health-message").textContent = `${h.backend}: ${h.message}`;
}

// ------------------------------------------------------------------ commands
function sendCommand(text, via) {
  text = text.trim();
  if (!text) return;
  if (text.toLowerCase() === "stop") { stop(); return; }
  send({ type: "command", text, via });
}

function stop() {
  const clickedAt = Date.now();  // wall clock (ms): the test compares it with ~/stop's arrival
  stats.stopClicks.push(clickedAt);
  send({ type: "stop", clicked_at: clickedAt });
}

function remember(text) {
  if (history[history.length - 1] !== text) history.push(text);
  history = history.slice(-50);
  try { localStorage.setItem(HISTORY_KEY, JSON.stringify(history)); } catch (e) { /* private mode */ }
  historyIndex = history.length;
}

// ------------------------------------------------------------------ push-to-talk
const talk = { held: false, stream: null, context: null, node: null, pending: [], samples: 0 };

function showVoice(v) {
  if (!v) return;
  const ready = v.state === "ready" && window.isSecureContext && navigator.mediaDevices;
  $("talk").disabled = !ready;
  let text = `voice: ${v.state}`;
  if (v.state === "ready") text += ` (${v.language}, sends from confidence ${v.min_confidence})`;
  if (v.reason) text += ` - ${v.reason}`;
  if (v.state === "ready" && !window.isSecureContext) text += " - the microphone needs https or localhost";
  $("voice").textContent = text;
}

function showTranscript(m) {
  stats.voice.push(m);
  let text;
  if (m.status === "sent") text = `heard “${m.text}” (confidence ${(m.confidence || 0).toFixed(2)}) → sent`;
  else if (m.status === "rejected") text = `heard “${m.text || ""}”: ${m.message || "say that again"} (${m.reason})`;
  else text = `${m.status}: ${m.message || m.reason || ""}`;
  $("transcript").textContent = text;
  $("transcript").dataset.status = m.status;
}

function flushAudio() {
  if (!talk.pending.length) return;
  let total = 0;
  for (const block of talk.pending) total += block.length;
  const pcm = new Int16Array(total);
  let offset = 0;
  for (const block of talk.pending) {
    for (let i = 0; i < block.length; i++) {
      const s = Math.max(-1, Math.min(1, block[i]));
      pcm[offset++] = s < 0 ? s * 32768 : s * 32767;
    }
  }
  talk.pending = [];
  if (ws && ws.readyState === WebSocket.OPEN) ws.send(pcm.buffer);
}

async function startTalk() {
  if (talk.held || $("talk").disabled) return;
  talk.held = true;
  $("talk").classList.add("recording");
  $("transcript").textContent = "listening…";
  try {
    const stream = await navigator.mediaDevices.getUserMedia({
      audio: { channelCount: 1, echoCancellation: false, noiseSuppression: false, autoGainControl: false } });
    let context;
    try { context = new AudioContext({ sampleRate: 16000 }); } catch (e) { context = new AudioContext(); }
    await context.audioWorklet.addModule("/static/pcm-tap.js");
    const source = context.createMediaStreamSource(stream);
    const node = new AudioWorkletNode(context, "pcm-tap");
    talk.stream = stream; talk.context = context; talk.node = node; talk.samples = 0;
    send({ type: "talk_start", rate: context.sampleRate });
    node.port.onmessage = (event) => {
      talk.pending.push(event.data);
      talk.samples += event.data.length;
      if (talk.pending.length >= 32) flushAudio();  // ~0.25 s at 16 kHz
    };
    source.connect(node);
    if (!talk.held) await endTalk();  // released while the microphone was opening
  } catch (error) {
    talk.held = false;
    $("talk").classList.remove("recording");
    $("transcript").textContent = `microphone: ${error.name}: ${error.message}`;
    releaseAudio();
  }
}

function releaseAudio() {
  if (talk.stream) talk.stream.getTracks().forEach((t) => t.stop());
  if (talk.context) talk.context.close();
  talk.stream = null; talk.context = null; talk.node = null;
}

async function endTalk() {
  if (!talk.held) return;
  talk.held = false;
  $("talk").classList.remove("recording");
  if (!talk.context) return;  // still opening: startTalk ends it
  talk.node.port.onmessage = null;
  flushAudio();
  send({ type: "talk_end" });
  $("transcript").textContent = `recognising ${(talk.samples / talk.context.sampleRate).toFixed(1)} s…`;
  releaseAudio();
}

// ------------------------------------------------------------------ wiring
window.addEventListener("DOMContentLoaded", () => {
  $("stop").addEventListener("click", stop);
  document.addEventListener("keydown", (event) => {
    if (event.key === "Escape") { event.preventDefault(); stop(); }
  }, true);
  $("command-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const text = $("command").value.trim();
    if (!text) return;
    remember(text);
    sendCommand(text, "typed");
    $("command").value = "";
  });
  $("command").addEventListener("keydown", (event) => {
    if (event.key === "ArrowUp" && historyIndex > 0) {
      historyIndex--; $("command").value = history[historyIndex]; event.preventDefault();
    } else if (event.key === "ArrowDown" && historyIndex < history.length) {
      historyIndex++; $("command").value = history[historyIndex] || ""; event.preventDefault();
    }
  });
  $("confirm-yes").addEventListener("click", () => answer("yes"));
  $("confirm-no").addEventListener("click", () => answer("no"));
  const talkButton = $("talk");
  talkButton.addEventListener("pointerdown", (event) => { event.preventDefault(); startTalk(); });
  for (const name of ["pointerup", "pointerleave", "pointercancel"]) {
    talkButton.addEventListener(name, () => endTalk());
  }
  connect();
});
