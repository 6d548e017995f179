// Test 1: sign in, record at 48 kHz and at 8 kHz from a fake microphone that
// speaks clinical sentences, see the words appear live (a partial) and then
// final, stop, find both sessions in the history, read the transcript there
// and download each one's SRT.

import { readFileSync } from 'node:fs';
import { join } from 'node:path';

import {
  byTestId, check, countWords, finalText, log, parseSrt, recordedSeconds, runTest, seenPartials,
  signIn, speechWav, stopAndSave, waitForState,
} from './lib.mjs';

// The phrases tests/whisper_e2e.rs shows tiny.en hears at each rate (espeak-ng
// at telephone bandwidth loses most of what the model needs, so 8 kHz gets
// the phrase it still hears correctly).
const PHRASES = [
  { text: 'her blood pressure is normal', pause: 1.8 },
  { text: 'the patient reports chest pain and shortness of breath', pause: 1.8 },
];
const RUNS = [
  { rate: 48000, label: '48 kHz', expected: ['patient', 'chest', 'pain', 'shortness', 'breath'], screenshot: 'live.png' },
  { rate: 8000, label: '8 kHz', expected: ['blood', 'pressure', 'normal'] },
];
/** How many of a run's expected words its finals must contain. */
const MIN_FINAL_WORDS = 2;

async function record(page, cfg, run) {
  await byTestId(page, 'rate-select').selectOption(String(run.rate));
  await page.evaluate(() => { window.__seenPartials = []; });
  await byTestId(page, 'record-start').click();
  await waitForState(page, 'live');
  log(`${run.label}: live`);
  // Words seen live, as a tentative partial, then final.
  await page.waitForFunction(
    (expected) => window.__seenPartials.some((t) => expected.some((w) => t.toLowerCase().includes(w))),
    run.expected,
    { timeout: 60000, polling: 100 },
  ).catch(async () => {
    throw new Error(`${run.label}: no partial with ${run.expected} within 60 s; partials seen: ${JSON.stringify(await seenPartials(page))}`);
  });
  log(`${run.label}: partials so far: ${JSON.stringify(await seenPartials(page))}`);
  await page.waitForFunction(
    ({ expected, min }) => {
      const text = [...document.querySelectorAll('[data-testid="transcript-final"]')]
        .map((e) => e.textContent.toLowerCase()).join(' ');
      return expected.filter((w) => text.includes(w)).length >= min;
    },
    { expected: run.expected, min: MIN_FINAL_WORDS },
    { timeout: 60000, polling: 100 },
  ).catch(async () => {
    throw new Error(`${run.label}: finals lack ${run.expected}: ${JSON.stringify(await finalText(page))}`);
  });
  const finals = await finalText(page);
  log(`${run.label}: finals: ${JSON.stringify(finals)}`);
  const stamps = await byTestId(page, 'transcript-final').locator('time').allTextContents();
  check(stamps.every((s) => /^\[\d{2}:\d{2}\]$/.test(s)), `finals without [mm:ss] stamps: ${stamps}`);
  if (run.screenshot && cfg.screenshots) {
    // The speech loops: catch the next tentative words for the picture too.
    await byTestId(page, 'transcript-partial').first().waitFor({ timeout: 15000 }).catch(() => {});
    await page.screenshot({ path: join(cfg.screenshots, run.screenshot) });
  }
  const id = await stopAndSave(page);
  const seconds = await recordedSeconds(page);
  log(`${run.label}: stopped after ${seconds} s of audio, stored as ${id}`);
  return { ...run, id, finals, seconds };
}

async function downloadSrt(page, run) {
  const [download] = await Promise.all([
    page.waitForEvent('download', { timeout: 15000 }),
    byTestId(page, 'export-srt').click(),
  ]);
  check(download.suggestedFilename() === `${run.id}.srt`, `SRT saved as ${download.suggestedFilename()}`);
  const path = await download.path();
  const cues = parseSrt(readFileSync(path, 'utf8'));
  const text = cues.map((c) => c.text).join(' ');
  check(cues.length > 0, `${run.label}: the SRT has no cues`);
  check(countWords(text, run.expected) >= MIN_FINAL_WORDS, `${run.label}: SRT lacks ${run.expected}: ${JSON.stringify(text)}`);
  check(cues[cues.length - 1].end <= run.seconds + 1, `${run.label}: SRT cue past the end of the audio`);
  log(`${run.label}: SRT with ${cues.length} cues: ${JSON.stringify(text)}`);
}

await runTest('record', async (cfg, open) => {
  const wav = speechWav(join(cfg.scratch, 'microphone.wav'), PHRASES, { rate: 48000 });
  const { page } = await open(wav);
  await signIn(page, cfg);
  // The page fills the engine choice from /v1/engines once signed in.
  await byTestId(page, 'engine-select')
    .locator('option[value="whisper"]')
    .waitFor({ state: 'attached', timeout: 10_000 })
    .catch(() => {});
  const engines = await byTestId(page, 'engine-select').locator('option').evaluateAll((os) => os.map((o) => o.value));
  check(engines.includes('whisper'), `engine choice lacks whisper: ${engines}`);
  await byTestId(page, 'engine-select').selectOption('whisper');

  const done = [];
  for (const run of RUNS) done.push(await record(page, cfg, run));

  await page.locator('nav a[data-route="history"]').click();
  await page.waitForURL('**/history');
  const items = byTestId(page, 'history-list').locator('[data-testid="history-item"]');
  await items.first().waitFor({ timeout: 15000 });
  const ids = await items.evaluateAll((els) => els.map((e) => e.dataset.sessionId));
  check(ids[0] === done[1].id && ids[1] === done[0].id, `history is not newest first: ${ids} (recorded ${done.map((r) => r.id)})`);

  for (const run of done) {
    const item = byTestId(page, 'history-list').locator(`[data-session-id="${run.id}"]`);
    const itemText = await item.innerText();
    check(/whisper/.test(itemText) && /Saved/.test(itemText), `history item for ${run.label}: ${JSON.stringify(itemText)}`);
    await item.getByRole('button').click();
    await page.waitForURL(`**/history?session=${run.id}`);
    const transcript = page.locator(`[data-testid="session-transcript"][data-session-id="${run.id}"]`);
    await transcript.locator('li').first().waitFor({ timeout: 15000 });
    const shown = await transcript.innerText();
    check(countWords(shown, run.expected) >= MIN_FINAL_WORDS, `${run.label}: history transcript ${JSON.stringify(shown)}`);
    // The player loads the stored audio (Range requests) and knows its length.
    const audioSecs = await page.waitForFunction((id) => {
      const a = document.querySelector('[data-testid="session-audio"]');
      const loaded = a.currentSrc.endsWith(`/v1/sessions/${id}/audio`) && a.readyState >= 1;
      return loaded && Number.isFinite(a.duration) ? a.duration : false;
    }, run.id, { timeout: 15000 }).then((h) => h.jsonValue());
    check(Math.abs(audioSecs - run.seconds) < 0.2, `${run.label}: player says ${audioSecs} s, recorded ${run.seconds} s`);
    await downloadSrt(page, run);
    if (run.rate === 48000 && cfg.screenshots) {
      await page.screenshot({ path: join(cfg.screenshots, 'history.png') });
    }
  }
});
