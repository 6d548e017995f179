// Unit tests of the page's stream logic (static/stream.js) with a scripted
// WebSocket: what is buffered, what is re-sent after a resume, when `stop`
// goes out, and how refusals end a recording. Run with `node --test`.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';

// What the browser has and Node 18 may not.
globalThis.CustomEvent ??= class CustomEvent extends Event {
  constructor(type, init = {}) {
    super(type, init);
    this.detail = init.detail ?? null;
  }
};

class FakeSocket extends EventTarget {
  static CONNECTING = 0;
  static OPEN = 1;
  static CLOSING = 2;
  static CLOSED = 3;
  static all = [];

  constructor(url) {
    super();
    this.url = url;
    this.readyState = FakeSocket.CONNECTING;
    this.bufferedAmount = 0;
    this.sent = [];
    FakeSocket.all.push(this);
  }

  open() {
    this.readyState = FakeSocket.OPEN;
    this.dispatchEvent(new Event('open'));
  }

  receive(msg) {
    const event = new Event('message');
    event.data = JSON.stringify(msg);
    this.dispatchEvent(event);
  }

  drop(code = 1006) {
    this.readyState = FakeSocket.CLOSED;
    const event = new Event('close');
    event.code = code;
    event.reason = '';
    this.dispatchEvent(event);
  }

  send(data) {
    this.sent.push(typeof data === 'string' ? JSON.parse(data) : new Uint8Array(data.buffer, data.byteOffset, data.byteLength).slice());
  }

  close() {
    this.readyState = FakeSocket.CLOSED;
  }

  /** The binary frames sent, joined. */
  audio() {
    const frames = this.sent.filter((m) => m instanceof Uint8Array);
    const out = new Uint8Array(frames.reduce((n, f) => n + f.length, 0));
    let at = 0;
    for (const f of frames) {
      out.set(f, at);
      at += f.length;
    }
    return out;
  }

  texts() {
    return this.sent.filter((m) => !(m instanceof Uint8Array));
  }
}

globalThis.WebSocket = FakeSocket;
let probeAnswer = null;
globalThis.fetch = async () => {
  if (!probeAnswer) throw new TypeError('network');
  return { status: probeAnswer.status, json: async () => ({ error: { code: probeAnswer.code } }) };
};

// static/ is not a Node package: load the page's module as the browser does, by its source.
const source = readFileSync(new URL('../static/stream.js', import.meta.url), 'utf8');
const { LiveStream } = await import(`data:text/javascript;base64,${Buffer.from(source).toString('base64')}`);

/** A frame of `n` bytes whose values continue a running counter (so gaps and repeats show). */
let counter = 0;
function frame(n = 10) {
  const bytes = new Uint8Array(n);
  for (let i = 0; i < n; i++) bytes[i] = counter++ % 251;
  return bytes.buffer;
}

function expected(from, to) {
  return Uint8Array.from({ length: to - from }, (_, i) => (from + i) % 251);
}

const tick = (ms = 0) => new Promise((resolve) => setTimeout(resolve, ms));

function newStream() {
  FakeSocket.all = [];
  counter = 0;
  probeAnswer = null;
  const stream = new LiveStream('ws://test/v1/stream');
  const ends = [];
  stream.addEventListener('end', (e) => ends.push(e.detail));
  return { stream, ends };
}

const READY = { type: 'ready', session_id: 's-1', limits: { idle_timeout_s: 300 } };

test('audio captured before ready is sent once the session is ready, then stop', async () => {
  const { stream, ends } = newStream();
  stream.push(frame());
  stream.begin({ sample_rate: 16000, encoding: 'pcm_s16le', channels: 1 });
  stream.push(frame());
  const ws = FakeSocket.all[0];
  ws.open();
  assert.equal(ws.texts()[0].type, 'start');
  assert.equal(ws.texts()[0].resume, undefined);
  assert.equal(ws.audio().length, 0, 'nothing before ready');
  ws.receive(READY);
  assert.deepEqual(ws.audio(), expected(0, 20));
  stream.finish();
  assert.deepEqual(ws.texts().map((m) => m.type), ['start', 'stop']);
  ws.receive({ type: 'stored', session_id: 's-1', duration_s: 1 });
  ws.receive({ type: 'closed', reason: 'client_stop' });
  assert.equal(ends.length, 1);
  assert.equal(ends[0].outcome, 'saved');
  assert.equal(ends[0].reason, 'client_stop');
});

test('after a drop the stream resumes from the durable offset and re-sends what the server lacks', async () => {
  const { stream, ends } = newStream();
  stream.begin({ sample_rate: 16000, encoding: 'pcm_s16le', channels: 1 });
  const first = FakeSocket.all[0];
  first.open();
  first.receive(READY);
  for (let i = 0; i < 3; i++) stream.push(frame());
  first.receive({ type: 'ack', received_bytes: 20, durable_bytes: 20 });
  assert.equal(stream.buffered, 10);
  first.drop();
  assert.equal(stream.state, 'reconnecting');
  // Captured while disconnected: kept.
  stream.push(frame());
  stream.push(frame());
  await tick(300);
  const second = FakeSocket.all[1];
  assert.ok(second, 'reconnected');
  second.open();
  assert.deepEqual(second.texts()[0].resume, { session_id: 's-1', offset_bytes: 20 });
  // The server holds a little more than the last ack said.
  second.receive({ ...READY, resume_from_bytes: 25 });
  assert.equal(stream.state, 'live');
  assert.deepEqual(second.audio(), expected(25, 50), 'everything after resume_from_bytes, once');
  stream.push(frame());
  assert.deepEqual(second.audio(), expected(25, 60));
  assert.equal(ends.length, 0);
});

test('stop waits for the reconnection and goes out after the buffered audio', async () => {
  const { stream } = newStream();
  stream.begin({ sample_rate: 8000, encoding: 'pcm_s16le', channels: 1 });
  const first = FakeSocket.all[0];
  first.open();
  first.receive(READY);
  stream.push(frame());
  first.drop();
  stream.push(frame());
  stream.finish();
  await tick(300);
  const second = FakeSocket.all[1];
  second.open();
  second.receive({ ...READY, resume_from_bytes: 10 });
  assert.deepEqual(second.audio(), expected(10, 20));
  const sent = second.sent.map((m) => (m instanceof Uint8Array ? 'audio' : m.type));
  assert.deepEqual(sent, ['start', 'audio', 'stop']);
  assert.equal(stream.state, 'stopping');
});

test('a server at capacity ends the recording with its code', async () => {
  const { stream, ends } = newStream();
  probeAnswer = { status: 503, code: 'server_at_capacity' };
  stream.begin({ sample_rate: 16000, encoding: 'pcm_s16le', channels: 1 });
  FakeSocket.all[0].drop();
  await tick(10);
  assert.equal(ends.length, 1);
  assert.equal(ends[0].outcome, 'failed');
  assert.equal(ends[0].code, 'server_at_capacity');
});

test('a fatal error (close 1013 after start) ends the recording without reconnecting', async () => {
  const { stream, ends } = newStream();
  stream.begin({ sample_rate: 16000, encoding: 'pcm_s16le', channels: 1 });
  const ws = FakeSocket.all[0];
  ws.open();
  ws.receive({ type: 'error', code: 'engine_unavailable', message: 'no', fatal: true });
  ws.drop(1013);
  await tick(300);
  assert.equal(FakeSocket.all.length, 1, 'no reconnect');
  assert.equal(ends[0].code, 'engine_unavailable');
});

test('an expired login ends the recording as unauthorized', async () => {
  const { stream, ends } = newStream();
  stream.begin({ sample_rate: 16000, encoding: 'pcm_s16le', channels: 1 });
  const ws = FakeSocket.all[0];
  ws.open();
  ws.receive(READY);
  ws.drop();
  await tick(300);
  probeAnswer = { status: 401, code: 'missing_credentials' };
  FakeSocket.all[1].drop();
  await tick(10);
  assert.equal(ends.length, 1);
  assert.equal(ends[0].code, 'unauthorized');
});

test('a session ended by the server reports its reason', async () => {
  const { stream, ends } = newStream();
  stream.begin({ sample_rate: 16000, encoding: 'pcm_s16le', channels: 1 });
  const ws = FakeSocket.all[0];
  ws.open();
  ws.receive(READY);
  ws.receive({ type: 'stored', session_id: 's-1', duration_s: 1800 });
  ws.receive({ type: 'closed', reason: 'max_duration' });
  ws.drop(1000);
  await tick(300);
  assert.equal(FakeSocket.all.length, 1, 'no reconnect after closed');
  assert.deepEqual([ends[0].outcome, ends[0].reason], ['saved', 'max_duration']);
});
