// Test 2: the connection to the server is cut mid-recording (a TCP proxy
// between the browser and the server resets every connection and refuses new
// ones for a few seconds). The page keeps capturing into its buffer,
// reconnects with resume, and re-sends what the server lacks: the stored
// audio has no gap (its length is every byte the page captured, and the
// recording's wall-clock time).

import { join } from 'node:path';

import {
  byTestId, check, connectionState, log, recordedBytes, recordedSeconds, runTest, signIn, speechWav,
  stopAndSave, waitForState,
} from './lib.mjs';
import { Proxy } from './proxy.mjs';

const RATE = 16000;
const BEFORE_CUT_S = 4;
const CUT_S = 5;
const AFTER_CUT_S = 4;

/** The RIFF chunks of a WAV file: format and the data length. */
function wavInfo(buffer) {
  check(buffer.toString('ascii', 0, 4) === 'RIFF' && buffer.toString('ascii', 8, 12) === 'WAVE', 'not a WAV file');
  let offset = 12;
  let format = null;
  while (offset + 8 <= buffer.length) {
    const id = buffer.toString('ascii', offset, offset + 4);
    const size = buffer.readUInt32LE(offset + 4);
    if (id === 'fmt ') {
      format = { channels: buffer.readUInt16LE(offset + 10), rate: buffer.readUInt32LE(offset + 12), bits: buffer.readUInt16LE(offset + 22) };
    } else if (id === 'data') {
      return { ...format, dataBytes: Math.min(size, buffer.length - offset - 8) };
    }
    offset += 8 + size + (size % 2);
  }
  throw new Error('WAV without a data chunk');
}

async function waitForRecorded(page, seconds) {
  await page.waitForFunction(
    (s) => Number(document.querySelector('[data-testid="timer"]').dataset.seconds) >= s,
    seconds,
    { timeout: (seconds + 20) * 1000, polling: 100 },
  );
}

await runTest('reconnect', async (cfg, open) => {
  const target = new URL(cfg.url);
  const proxy = await Proxy.start(Number(target.port));
  const viaProxy = { ...cfg, url: `http://127.0.0.1:${proxy.port}` };
  log(`proxy 127.0.0.1:${proxy.port} -> ${target.host}`);
  try {
    const wav = speechWav(join(cfg.scratch, 'microphone.wav'), [
      { text: 'the wound is healing well', pause: 1.5 },
      { text: 'there is no sign of infection', pause: 1.5 },
    ], { rate: 48000 });
    const { page } = await open(wav);
    await signIn(page, viaProxy);
    await byTestId(page, 'rate-select').selectOption(String(RATE));
    const clickedAt = Date.now();
    await byTestId(page, 'record-start').click();
    await waitForState(page, 'live');
    await waitForRecorded(page, BEFORE_CUT_S);

    log(`cutting the connection at ${await recordedSeconds(page)} s`);
    proxy.cut();
    await waitForState(page, 'reconnecting', 10000);
    await page.waitForTimeout(CUT_S * 1000);
    const state = await connectionState(page);
    check(state === 'reconnecting', `while cut off the page says ${state}`);
    const shown = await byTestId(page, 'connection-state').innerText();
    log(`after ${CUT_S} s cut off the page says ${JSON.stringify(shown)}`);
    if (cfg.screenshots) await page.screenshot({ path: join(cfg.screenshots, 'reconnecting.png') });

    proxy.resume();
    await waitForState(page, 'live', 20000);
    const message = await byTestId(page, 'live-message').innerText();
    log(`reconnected at ${await recordedSeconds(page)} s: ${JSON.stringify(message)}`);
    check(/Reconnected/.test(message), `no reconnect message: ${JSON.stringify(message)}`);
    const resumedAt = await recordedSeconds(page);
    await waitForRecorded(page, resumedAt + AFTER_CUT_S);

    const wallSecs = (Date.now() - clickedAt) / 1000;
    const id = await stopAndSave(page);
    const bytes = await recordedBytes(page);
    const pageSecs = bytes / 2 / RATE;
    log(`stored ${id}: the page captured ${bytes} bytes (${pageSecs.toFixed(2)} s) in ${wallSecs.toFixed(1)} s`);
    // Capture ran the whole time, cut or not (it starts a moment after the click).
    check(pageSecs > wallSecs - 2.5 && pageSecs < wallSecs + 0.5, `captured ${pageSecs} s in ${wallSecs} s of recording`);

    const sessionResponse = await page.request.get(`${viaProxy.url}/v1/sessions/${id}`);
    check(sessionResponse.ok(), `GET /v1/sessions/${id}: ${sessionResponse.status()}`);
    const session = await sessionResponse.json();
    log(`session: ${JSON.stringify(session)}`);
    check(session.received_bytes === bytes, `the server stored ${session.received_bytes} bytes, the page captured ${bytes}`);
    check(Math.abs(session.duration_s - pageSecs) < 0.05, `stored ${session.duration_s} s, captured ${pageSecs} s`);

    const audio = await page.request.get(`${viaProxy.url}/v1/sessions/${id}/audio`);
    check(audio.ok(), `GET audio: ${audio.status()}`);
    const info = wavInfo(await audio.body());
    check(info.rate === RATE && info.channels === 1 && info.bits === 16, `stored WAV format ${JSON.stringify(info)}`);
    check(info.dataBytes === bytes, `stored WAV holds ${info.dataBytes} bytes of audio, the page captured ${bytes}`);
    log(`stored WAV: ${(info.dataBytes / 2 / RATE).toFixed(2)} s at ${info.rate} Hz, no gap`);
  } finally {
    await proxy.close();
  }
});
