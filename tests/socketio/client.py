"""A python-socketio (asyncio) client driven by tests/socketio.rs.

Reads a plan (JSON) on stdin, runs it against the server and prints every
thing that happened as one JSON line each: {"event": name, "data": ...}.
Binary audio is read from a file and sent as `audio` events, each with one
binary attachment. The plan's keys:

  url, transports (["websocket"] or ["polling"]), auth (handshake auth
  object or null), headers (extra HTTP headers), start (the start object;
  sent with an acknowledgement), audio_file, frame_bytes, bytes_per_sec
  (pacing; 0 = unpaced), offset (first byte of audio_file to send),
  drop_after (disconnect abruptly once this many bytes were sent),
  raw_events ([[name, data], ...] emitted after the start), stop (bool),
  wait_secs (how long to wait for `closed`).
"""

import asyncio
import json
import os
import sys

import socketio

NS = "/transcribe"


def out(event, data=None):
    print(json.dumps({"event": event, "data": data}), flush=True)


async def main():
    plan = json.load(sys.stdin)
    client = socketio.AsyncClient(reconnection=False, logger=False, engineio_logger=False)
    closed = asyncio.Event()

    for name in ("transcript", "ack", "error", "stored", "ready"):
        def handler(data, name=name):
            out(name, data)
        client.on(name, handler, namespace=NS)

    def on_closed(data):
        out("closed", data)
        closed.set()

    client.on("closed", on_closed, namespace=NS)

    def on_connect_error(data):
        out("connect_error", data)

    client.on("connect_error", on_connect_error, namespace=NS)

    def on_disconnect(*_args):
        out("disconnect")
        closed.set()

    client.on("disconnect", on_disconnect, namespace=NS)

    try:
        await client.connect(
            plan["url"],
            namespaces=[NS],
            transports=plan.get("transports"),
            auth=plan.get("auth"),
            headers=plan.get("headers") or {},
            socketio_path="socket.io",
            wait_timeout=10,
        )
    except socketio.exceptions.ConnectionError as e:
        out("connect_failed", str(e))
        return
    out("connected", client.transport())

    start = plan.get("start")
    resume_from = 0
    if start is not None:
        try:
            answer = await client.call("start", start, namespace=NS, timeout=15)
        except socketio.exceptions.TimeoutError:
            answer = None
        out("start_ack", answer)
        if isinstance(answer, dict):
            resume_from = answer.get("resume_from_bytes") or 0
        if not isinstance(answer, dict) or answer.get("type") != "ready":
            await finish(client, closed, plan.get("wait_secs", 20))
            return

    for name, data in plan.get("raw_events", []):
        if isinstance(data, dict) and "__bytes__" in data:
            data = bytes(data["__bytes__"])
        await client.emit(name, data, namespace=NS)

    if plan.get("audio_file"):
        with open(plan["audio_file"], "rb") as f:
            audio = f.read()
        frame = plan.get("frame_bytes", 3200)
        per_sec = plan.get("bytes_per_sec", 0)
        pos = plan.get("offset", 0)
        if pos == "resume":
            pos = resume_from
        drop_after = plan.get("drop_after")
        loop = asyncio.get_running_loop()
        began = loop.time()
        sent = 0
        while pos < len(audio):
            if drop_after is not None and sent >= drop_after:
                out("dropping", {"sent": sent, "pos": pos})
                # An abrupt loss: the process dies, its connections with it.
                os._exit(0)
            if closed.is_set():
                break
            chunk = audio[pos:pos + frame]
            await client.emit("audio", chunk, namespace=NS)
            pos += len(chunk)
            sent += len(chunk)
            if per_sec:
                due = began + sent / per_sec
                delay = due - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
        out("sent", {"bytes": sent, "end": pos})

    if plan.get("stop", True) and not closed.is_set():
        await client.emit("stop", namespace=NS)
    await finish(client, closed, plan.get("wait_secs", 30))


async def finish(client, closed, wait_secs):
    """Waits for `closed` (or a disconnect), then leaves."""
    try:
        await asyncio.wait_for(closed.wait(), wait_secs)
    except asyncio.TimeoutError:
        out("timeout")
    if client.connected:
        await client.disconnect()


asyncio.run(main())
