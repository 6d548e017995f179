// The npm socket.io-client driven by tests/socketio.rs: the same plan as
// tests/socketio/client.py (read as JSON on stdin), the same JSON lines out.
import { readFileSync } from "node:fs";
import { io } from "socket.io-client";

const NS = "/transcribe";
const out = (event, data = null) => process.stdout.write(JSON.stringify({ event, data }) + "\n");
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

const plan = JSON.parse(readFileSync(0, "utf8"));
const target = new URL(plan.url);
const socket = io(target.origin + NS + target.search, {
  path: "/socket.io/",
  transports: plan.transports ?? ["polling", "websocket"],
  auth: plan.auth ?? undefined,
  extraHeaders: plan.headers ?? {},
  reconnection: false,
  timeout: 10000,
});

let closed;
let isClosed = false;
const done = new Promise((r) => (closed = () => { isClosed = true; r(); }));
for (const name of ["transcript", "ack", "error", "stored", "ready"]) {
  socket.on(name, (data) => out(name, data));
}
socket.on("closed", (data) => {
  out("closed", data);
  closed();
});
socket.on("disconnect", (reason) => {
  out("disconnect", reason);
  closed();
});

const connected = await new Promise((resolve) => {
  socket.once("connect", () => resolve(true));
  socket.once("connect_error", (err) => {
    out("connect_error", { message: err.message, data: err.data ?? null });
    resolve(false);
  });
});
if (!connected) {
  socket.close();
  process.exit(0);
}
out("connected", socket.io.engine.transport.name);

const within = (ms, p) => Promise.race([p, sleep(ms).then(() => "timeout")]);
let resumeFrom = 0;
if (plan.start) {
  let answer = null;
  try {
    answer = await socket.timeout(15000).emitWithAck("start", plan.start);
  } catch {
    answer = null;
  }
  out("start_ack", answer);
  resumeFrom = answer?.resume_from_bytes ?? 0;
  if (!answer || answer.type !== "ready") {
    await within((plan.wait_secs ?? 20) * 1000, done);
    socket.close();
    process.exit(0);
  }
}

for (const [name, data] of plan.raw_events ?? []) {
  socket.emit(name, data && data.__bytes__ ? Uint8Array.from(data.__bytes__) : data);
}

if (plan.audio_file) {
  const audio = readFileSync(plan.audio_file);
  const frame = plan.frame_bytes ?? 3200;
  const perSec = plan.bytes_per_sec ?? 0;
  let pos = plan.offset === "resume" ? resumeFrom : plan.offset ?? 0;
  let sent = 0;
  const began = Date.now();
  while (pos < audio.length && !isClosed) {
    if (plan.drop_after != null && sent >= plan.drop_after) {
      out("dropping", { sent, pos });
      process.exit(0);
    }
    const chunk = audio.subarray(pos, Math.min(pos + frame, audio.length));
    socket.emit("audio", chunk);
    pos += chunk.length;
    sent += chunk.length;
    if (perSec) {
      const delay = began + (sent / perSec) * 1000 - Date.now();
      if (delay > 0) await sleep(delay);
    }
  }
  out("sent", { bytes: sent, end: pos });
}

if ((plan.stop ?? true) && !isClosed) socket.emit("stop");
if ((await within((plan.wait_secs ?? 30) * 1000, done)) === "timeout") out("timeout");
socket.close();
process.exit(0);
