// The live page: settings (audio quality, engine, Transcribe Medical's
// specialty and mode), start and stop, the timer, level meter and connection
// state, and the live transcript (tentative partials replaced by result id,
// finals appended with their time).

import * as api from './api.js';
import { byId, h, showMessage } from './dom.js';
import { clock, duration } from './format.js';
import { MicrophoneError, Recorder } from './recorder.js';
import { LiveStream, streamUrl } from './stream.js';

const MEDICAL_ENGINE = 'transcribe-medical';

const STATE_TEXT = {
  idle: 'Not connected',
  connecting: 'Connecting…',
  live: 'Live',
  reconnecting: 'Reconnecting…',
  stopping: 'Saving…',
  saved: 'Saved',
  ended: 'Ended',
  failed: 'Disconnected',
};

/** Why the server ended a session (`closed.reason`), for the clinician. */
function closedMessage(reason, limits) {
  switch (reason) {
    case 'idle_timeout':
      return `The session ended because no audio reached the server for ${duration(limits.idle_timeout_s)}. What was recorded is saved.`;
    case 'max_duration':
      return `The recording reached the longest allowed length (${duration(limits.max_duration_s)}) and was saved. Press Start to go on in a new recording.`;
    case 'buffer_limit':
      return 'Transcription fell too far behind and was stopped. The audio is saved.';
    case 'server_shutdown':
      return 'The server is restarting. Your recording was saved; press Start to go on in a new recording.';
    case 'engine_failed':
      return 'The transcription engine failed. The audio is saved; the transcript may be incomplete.';
    case 'storage_pending':
      return 'The recording ended but could not be stored yet. The server keeps it and stores it shortly; it appears in the history then.';
    case 'logged_out':
      return 'You were logged out, so the recording ended. What was recorded is saved.';
    case 'access_revoked':
      return 'Your account was disabled, so the recording ended. What was recorded is saved.';
    case 'spool_failed':
      return 'The server could not keep the audio safe on its disk and ended the recording. What it confirmed is kept and appears in the history.';
    default:
      return `The session ended (${reason}).`;
  }
}

/** Why a recording could not go on (a refusal or fatal error code). */
function failureMessage(code, message) {
  switch (code) {
    case 'server_at_capacity':
    case 'too_many_connections':
      return 'The server is at capacity right now. Please try again in a minute.';
    case 'user_at_capacity':
      return 'You already have as many recordings open as one user may. Stop one (or close its tab), then press Start.';
    case 'start_timeout':
      return 'The connection was closed because the recording did not start in time. Press Start again.';
    case 'user_disabled':
      return 'Your account is disabled. Ask an administrator.';
    case 'bad_host':
      return 'The server does not answer to this address. Open the page by its configured name.';
    case 'server_shutdown':
      return 'The server is restarting. Please try again in a moment.';
    case 'unauthorized':
      return 'Your login has expired. Sign in again, then press Start.';
    case 'origin_not_allowed':
      return 'The server refused this page (origin not allowed).';
    case 'connection_lost':
      return 'The connection to the server was lost for too long. What reached the server is saved in the history.';
    case 'unknown_session':
      return 'The server ended the session while the connection was down. What reached it is saved in the history.';
    case 'stop_unconfirmed':
      return 'The connection dropped while the recording was being saved. It appears in the history once the server has stored it.';
    case 'engine_unavailable':
      return 'The transcription engine is not available right now. Try again later or choose another engine.';
    case 'unknown_engine':
      return 'That engine is not available on this server. Choose another one.';
    case 'unsupported_sample_rate':
      return 'The server does not accept this audio quality. Choose another one.';
    case 'buffer_limit':
    case 'engine_failed':
      return 'Transcription stopped on the server. The audio is saved.';
    case 'storage_failed':
      return 'The recording could not be stored yet. The server keeps it and retries; it appears in the history then.';
    default:
      return `The recording stopped: ${message || code || 'unknown error'}.`;
  }
}

export class LiveView {
  constructor({ onUnauthorized }) {
    this.onUnauthorized = onUnauthorized;
    this.els = {
      rate: byId('rate'),
      engine: byId('engine'),
      specialty: byId('specialty'),
      specialtyField: byId('specialty-field'),
      mode: byId('mode'),
      modeField: byId('mode-field'),
      start: byId('record-start'),
      stop: byId('record-stop'),
      timer: byId('timer'),
      limit: byId('timer-limit'),
      level: byId('level'),
      state: byId('connection-state'),
      message: byId('live-message'),
      transcript: byId('transcript'),
      empty: byId('transcript-empty'),
      finals: byId('finals'),
      partials: byId('partials'),
    };
    this.recorder = null;
    this.stream = null;
    this.rate = 16000;
    this.limits = {};
    this.partials = new Map();
    this.els.engine.addEventListener('change', () => this.showEngineOptions());
    this.els.start.addEventListener('click', () => this.start());
    this.els.stop.addEventListener('click', () => this.stop());
    window.addEventListener('beforeunload', (event) => {
      if (this.recording) {
        event.preventDefault();
        event.returnValue = '';
      }
    });
  }

  get recording() {
    return this.stream !== null;
  }

  /** Fills the engine choice with the server's ready engines. */
  async loadEngines() {
    const select = this.els.engine;
    try {
      const list = await api.engines();
      const ready = (list.engines || []).filter((e) => e.ready);
      select.replaceChildren(
        ...ready.map((e) => h('option', { value: e.name, selected: e.name === list.default }, engineLabel(e.name))),
      );
      if (ready.length === 0) {
        select.append(h('option', { value: '' }, 'No engine is ready'));
        this.message('No transcription engine is ready on the server right now.', 'info');
      }
    } catch (error) {
      if (error.status === 401) return;
      select.replaceChildren(h('option', { value: '' }, 'Server default'));
    }
    this.showEngineOptions();
  }

  showEngineOptions() {
    const medical = this.els.engine.value === MEDICAL_ENGINE;
    this.els.specialtyField.hidden = !medical;
    this.els.modeField.hidden = !medical;
  }

  message(content, kind = 'error') {
    showMessage(this.els.message, content, kind);
  }

  setControls(recording) {
    this.els.start.disabled = recording;
    this.els.stop.disabled = !recording;
    for (const el of [this.els.rate, this.els.engine, this.els.specialty, this.els.mode]) el.disabled = recording;
  }

  showState(state) {
    const el = this.els.state;
    el.dataset.state = state;
    let text = STATE_TEXT[state] || state;
    if (state === 'reconnecting' && this.stream) {
      const kept = this.stream.buffered / 2 / this.rate;
      text = `Reconnecting… ${kept.toFixed(0)} s of audio kept`;
    }
    el.textContent = text;
  }

  async start() {
    if (this.recording) return;
    this.message('');
    this.setControls(true);
    this.clearTranscript();
    const rate = Number(this.els.rate.value);
    const stream = new LiveStream(streamUrl());
    let recorder;
    try {
      recorder = await Recorder.start({
        rate,
        onFrame: (pcm) => this.onFrame(stream, pcm),
        // Rises at once, falls back gently: readable at a glance, like a VU meter.
        onLevel: (level) => { this.els.level.value = Math.max(level, this.els.level.value * 0.8); },
        onEnded: () => {
          this.message('The microphone was disconnected. The recording was stopped and saved.');
          this.stop();
        },
      });
    } catch (error) {
      this.setControls(false);
      this.message(error instanceof MicrophoneError ? error.message : `The microphone could not be opened: ${error}`);
      return;
    }
    this.recorder = recorder;
    this.stream = stream;
    this.rate = recorder.sampleRate;
    this.limits = {};
    this.els.limit.textContent = '';
    this.updateTimer();
    stream.addEventListener('state', (e) => this.showState(e.detail.state));
    stream.addEventListener('ready', (e) => this.onReady(e.detail));
    stream.addEventListener('transcript', (e) => this.onTranscript(e.detail.transcript));
    stream.addEventListener('notice', (e) => this.onNotice(e.detail.error));
    stream.addEventListener('end', (e) => this.onEnd(e.detail));
    const start = { sample_rate: recorder.sampleRate, encoding: 'pcm_s16le', channels: 1, language: 'en-US' };
    const engine = this.els.engine.value;
    if (engine) start.engine = engine;
    if (engine === MEDICAL_ENGINE) {
      start.specialty = this.els.specialty.value;
      start.mode = this.els.mode.value;
    }
    // The server keeps a cookie login alive while its WebSocket records, so a
    // resume after a long dictation is still authorised.
    stream.begin(start);
  }

  onFrame(stream, pcm) {
    stream.push(pcm);
    if (stream === this.stream) {
      this.updateTimer();
      if (stream.state === 'reconnecting') this.showState('reconnecting');
    }
  }

  updateTimer() {
    const bytes = this.stream ? this.stream.produced : 0;
    const seconds = bytes / 2 / this.rate;
    this.els.timer.textContent = clock(seconds);
    this.els.timer.dataset.bytes = String(bytes);
    this.els.timer.dataset.seconds = seconds.toFixed(1);
    const max = this.limits.max_duration_s;
    if (max && max - seconds <= 60 && max - seconds > 0 && this.els.message.hidden) {
      this.message(`Less than a minute left: recordings stop at ${duration(max)}.`, 'info');
    }
  }

  onReady({ ready, resumed }) {
    this.limits = ready.limits || {};
    if (this.limits.max_duration_s) this.els.limit.textContent = `of ${clock(this.limits.max_duration_s)}`;
    this.els.state.dataset.sessionId = ready.session_id;
    if (resumed) {
      this.message('Reconnected: the recording goes on and nothing was lost.', 'info');
    } else if (this.els.message.dataset.kind === 'info') {
      this.message('');
    }
  }

  onNotice(error) {
    if (error.code === 'engine_retrying') {
      this.message('The transcription engine is reconnecting; the audio is safe and nothing is lost.', 'info');
    } else {
      // bad_frame and friends: the session goes on; the console has the detail.
      console.warn('auscult: server notice', error.code, error.message);
    }
  }

  async stop() {
    const recorder = this.recorder;
    const stream = this.stream;
    if (!recorder || !stream) return;
    this.recorder = null;
    this.els.stop.disabled = true;
    await recorder.stop();
    this.els.level.value = 0;
    stream.finish();
  }

  async onEnd({ outcome, reason, code, message, stored, sessionId }) {
    const recorder = this.recorder;
    this.recorder = null;
    if (recorder) await recorder.stop();
    this.stream = null;
    this.setControls(false);
    this.els.level.value = 0;
    this.dropPartials();
    if (outcome === 'saved' && reason === 'client_stop') {
      this.message(savedMessage(stored, sessionId), 'success');
    } else if (outcome === 'saved' || (outcome === 'ended' && reason)) {
      this.message(closedMessage(reason, this.limits), reason === 'storage_pending' ? 'error' : 'info');
    } else {
      this.message(failureMessage(code, message));
      if (code === 'unauthorized') this.onUnauthorized();
    }
  }

  clearTranscript() {
    this.partials.clear();
    this.els.finals.replaceChildren();
    this.els.partials.replaceChildren();
    this.els.empty.hidden = false;
  }

  onTranscript(t) {
    this.els.empty.hidden = true;
    let partial = this.partials.get(t.result_id);
    if (t.is_partial) {
      if (!partial) {
        partial = h('span', { class: 'partial', dataset: { testid: 'transcript-partial', resultId: t.result_id } });
        this.partials.set(t.result_id, partial);
        this.els.partials.append(partial);
      }
      partial.textContent = t.text;
    } else {
      if (partial) partial.remove();
      this.partials.delete(t.result_id);
      const text = t.text.trim();
      if (text) {
        this.els.finals.append(
          h('li', { class: 'final', dataset: { testid: 'transcript-final', resultId: t.result_id } },
            h('time', { class: 'stamp', datetime: `PT${t.start.toFixed(1)}S` }, `[${clock(t.start)}]`),
            ' ',
            h('span', { class: 'text' }, text)),
        );
      }
    }
    this.els.transcript.scrollTop = this.els.transcript.scrollHeight;
  }

  /** Tentative words that never became final (the session ended) are removed. */
  dropPartials() {
    for (const el of this.partials.values()) el.remove();
    this.partials.clear();
  }
}

function engineLabel(name) {
  switch (name) {
    case 'whisper':
      return 'Whisper (on this server)';
    case 'transcribe-medical':
      return 'Amazon Transcribe Medical';
    case 'transcribe':
      return 'Amazon Transcribe';
    case 'riva':
      return 'NVIDIA Riva';
    case 'loadtest':
      return 'Load test (no speech recognition)';
    default:
      return name;
  }
}

function savedMessage(stored, sessionId) {
  const id = (stored && stored.session_id) || sessionId;
  const length = stored && stored.duration_s !== undefined ? ` (${duration(stored.duration_s)})` : '';
  return [
    `Saved${length}. `,
    h('a', { href: `/history?session=${encodeURIComponent(id)}`, dataset: { link: '', testid: 'saved-link' } }, 'Open it in the history'),
  ];
}
