// Shared by the browser tests: configuration from the environment, espeak-ng
// speech as the fake microphone, headless Chromium with that microphone,
// and the steps every test takes on the page (sign in, record, stop).
//
// Environment (tests/browser_e2e.rs sets it; set it yourself to run a script by hand):
//   AUSCULT_URL          the server, e.g. http://127.0.0.1:8080
//   AUSCULT_USER         a user made with `auscult users add NAME --password-stdin`
//   AUSCULT_PASSWORD     their password
//   AUSCULT_SCREENSHOTS  where to write the screenshots (optional)
//   AUSCULT_CHROMIUM     the browser (default /usr/bin/chromium, Debian's `chromium`)
//   AUSCULT_E2E_TMP      a scratch folder (default: a new temp folder)

import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { chromium } from 'playwright-core';

const started = Date.now();

export function log(...args) {
  const t = ((Date.now() - started) / 1000).toFixed(1).padStart(6);
  console.log(`[${t}s]`, ...args);
}

export class TestFailure extends Error {}

export function check(condition, message) {
  if (!condition) throw new TestFailure(message);
}

export function env(name, fallback) {
  const value = process.env[name] ?? fallback;
  if (value === undefined || value === '') throw new TestFailure(`${name} must be set`);
  return value;
}

export function config() {
  const scratch = process.env.AUSCULT_E2E_TMP || mkdtempSync(join(tmpdir(), 'auscult-e2e-'));
  mkdirSync(scratch, { recursive: true });
  const screenshots = process.env.AUSCULT_SCREENSHOTS || null;
  if (screenshots) mkdirSync(screenshots, { recursive: true });
  return {
    url: env('AUSCULT_URL').replace(/\/$/, ''),
    user: env('AUSCULT_USER'),
    password: env('AUSCULT_PASSWORD'),
    chromium: env('AUSCULT_CHROMIUM', '/usr/bin/chromium'),
    screenshots,
    scratch,
  };
}

/** Lowercase words without punctuation, as the transcript checks compare them. */
export function words(text) {
  return (text || '').toLowerCase().replace(/[^a-z0-9' ]+/g, ' ').split(/\s+/).filter(Boolean);
}

/** How many of `expected` occur among the words of `text`. */
export function countWords(text, expected) {
  const heard = new Set(words(text));
  return expected.filter((w) => heard.has(w)).length;
}

/**
 * Writes `parts` ([{text, pause}]: each spoken by espeak-ng, then `pause`
 * seconds of silence) after `lead` seconds of silence as one mono 16-bit WAV
 * at `rate`: the fake microphone, which Chromium plays in a loop.
 */
export function speechWav(path, parts, { rate = 48000, lead = 0.5 } = {}) {
  const pieces = parts.map(({ text, pause }, i) => {
    const raw = `${path}.${i}.espeak.wav`;
    const piece = `${path}.${i}.wav`;
    execFileSync('espeak-ng', ['-w', raw, text]);
    const before = i === 0 ? lead : 0;
    execFileSync('sox', [raw, '-r', String(rate), '-c', '1', '-b', '16', '-e', 'signed-integer', piece,
      'pad', String(before), String(pause)]);
    return piece;
  });
  execFileSync('sox', [...pieces, path]);
  return path;
}

/** Headless Chromium whose microphone is `wav`, allowed without asking. */
export async function launch(cfg, wav) {
  check(existsSync(cfg.chromium), `no browser at ${cfg.chromium}: apt-get install chromium (or set AUSCULT_CHROMIUM)`);
  const browser = await chromium.launch({
    executablePath: cfg.chromium,
    headless: true,
    args: [
      '--use-fake-ui-for-media-stream',
      '--use-fake-device-for-media-stream',
      `--use-file-for-fake-audio-capture=${wav}`,
      '--autoplay-policy=no-user-gesture-required',
    ],
  });
  const context = await browser.newContext({
    acceptDownloads: true,
    viewport: { width: 1200, height: 760 },
    deviceScaleFactor: 1,
    colorScheme: 'light',
    locale: 'en-GB',
    timezoneId: 'UTC',
  });
  const page = await context.newPage();
  const consoleLines = [];
  page.on('console', (msg) => consoleLines.push(`${msg.type()}: ${msg.text()}`));
  page.on('pageerror', (error) => consoleLines.push(`pageerror: ${error.message}`));
  // Partials are replaced as they change and removed when final: remember
  // every text a partial showed, so the test can tell what appeared live.
  await page.addInitScript(() => {
    window.__seenPartials = [];
    const seen = () => {
      for (const el of document.querySelectorAll('[data-testid="transcript-partial"]')) {
        const text = el.textContent;
        const last = window.__seenPartials[window.__seenPartials.length - 1];
        if (text && text !== last) window.__seenPartials.push(text);
      }
    };
    new MutationObserver(seen).observe(document, { subtree: true, childList: true, characterData: true });
  });
  return { browser, context, page, consoleLines };
}

export const byTestId = (page, id) => page.locator(`[data-testid="${id}"]`);

/** Signs in through the form (which must be shown: the server is not in local mode). */
export async function signIn(page, cfg) {
  await page.goto(`${cfg.url}/`);
  await byTestId(page, 'login-username').waitFor({ state: 'visible', timeout: 15000 });
  await byTestId(page, 'login-username').fill(cfg.user);
  await byTestId(page, 'login-password').fill(cfg.password);
  await byTestId(page, 'login-submit').click();
  await byTestId(page, 'record-start').waitFor({ state: 'visible', timeout: 15000 });
  log(`signed in as ${cfg.user}`);
}

export async function connectionState(page) {
  return byTestId(page, 'connection-state').getAttribute('data-state');
}

export async function waitForState(page, states, timeout = 20000) {
  const wanted = Array.isArray(states) ? states : [states];
  await page.waitForFunction(
    (w) => w.includes(document.querySelector('[data-testid="connection-state"]').dataset.state),
    wanted,
    { timeout, polling: 50 },
  );
}

/** Seconds of audio the page has captured (its timer). */
export async function recordedSeconds(page) {
  return Number(await byTestId(page, 'timer').getAttribute('data-seconds'));
}

export async function recordedBytes(page) {
  return Number(await byTestId(page, 'timer').getAttribute('data-bytes'));
}

export async function finalText(page) {
  return (await byTestId(page, 'transcript-final').allTextContents()).join(' ');
}

export async function seenPartials(page) {
  return page.evaluate(() => window.__seenPartials.slice());
}

/** Clicks Stop and waits for `stored`; returns the session id from the "saved" link. */
export async function stopAndSave(page) {
  await byTestId(page, 'record-stop').click();
  await waitForState(page, 'saved', 60000);
  const href = await byTestId(page, 'saved-link').getAttribute('href');
  const id = new URL(href, 'http://x').searchParams.get('session');
  check(id, `no session id in the saved link ${href}`);
  return id;
}

/** A parsed SRT file: its cues, after checking numbering and timing lines. */
export function parseSrt(text) {
  const time = /^(\d{2}):(\d{2}):(\d{2}),(\d{3})$/;
  const seconds = (s) => {
    const m = time.exec(s);
    check(m, `bad SRT time ${JSON.stringify(s)}`);
    return Number(m[1]) * 3600 + Number(m[2]) * 60 + Number(m[3]) + Number(m[4]) / 1000;
  };
  const blocks = text.replace(/\r\n/g, '\n').trim().split(/\n\s*\n/).filter((b) => b.trim());
  let previousEnd = 0;
  return blocks.map((block, i) => {
    const lines = block.split('\n');
    check(lines[0].trim() === String(i + 1), `SRT cue ${i + 1} is numbered ${JSON.stringify(lines[0])}`);
    const parts = (lines[1] || '').split(' --> ');
    check(parts.length === 2, `SRT cue ${i + 1} has no timing line: ${JSON.stringify(lines[1])}`);
    const start = seconds(parts[0].trim());
    const end = seconds(parts[1].trim());
    check(start <= end, `SRT cue ${i + 1} ends before it starts`);
    check(start + 0.001 >= previousEnd - 0.5, `SRT cue ${i + 1} starts long before the previous one ended`);
    previousEnd = end;
    const body = lines.slice(2).join(' ').trim();
    check(body, `SRT cue ${i + 1} has no text`);
    return { start, end, text: body };
  });
}

/** Runs `body` with a browser; on failure prints what the page showed and said. */
export async function runTest(name, body, { timeoutMs = 300000 } = {}) {
  const cfg = config();
  const watchdog = setTimeout(() => {
    console.error(`${name}: FAILED: no result within ${timeoutMs / 1000} s`);
    process.exit(1);
  }, timeoutMs);
  let session = null;
  try {
    await body(cfg, async (wav) => {
      session = await launch(cfg, wav);
      return session;
    });
    log(`${name}: passed`);
    process.exitCode = 0;
  } catch (error) {
    process.exitCode = 1;
    console.error(`${name}: FAILED: ${error instanceof TestFailure ? error.message : error.stack}`);
    if (session) {
      try {
        const shot = join(cfg.scratch, `${name}-failure.png`);
        await session.page.screenshot({ path: shot, fullPage: true });
        console.error(`screenshot of the page: ${shot}`);
        console.error(`page text:\n${await session.page.locator('body').innerText()}`);
      } catch (e) {
        console.error(`(no screenshot: ${e.message})`);
      }
      console.error(`browser console:\n  ${session.consoleLines.join('\n  ') || '(nothing)'}`);
    }
  } finally {
    clearTimeout(watchdog);
    if (session) await session.browser.close().catch(() => {});
  }
}
