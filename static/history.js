// The history: the user's sessions, newest first and paged, and one session's
// details: transcript with timestamps, audio playback, exports and delete.

import * as api from './api.js';
import { byId, h, showMessage } from './dom.js';
import { clock, dateTime, duration, rate } from './format.js';

const PAGE_SIZE = 20;
const EXPORTS = ['txt', 'json', 'srt', 'vtt'];

const STATUS_TEXT = {
  live: 'Recording',
  stored: 'Saved',
  recovered: 'Recovered',
  pending_upload: 'Saving',
};

export class HistoryView {
  constructor({ onNavigate }) {
    this.onNavigate = onNavigate;
    this.els = {
      message: byId('history-message'),
      list: byId('history-list'),
      empty: byId('history-empty'),
      more: byId('history-more'),
      refresh: byId('history-refresh'),
      detail: byId('session-detail'),
      title: byId('detail-title'),
      meta: byId('detail-meta'),
      audio: byId('detail-audio'),
      transcript: byId('detail-transcript'),
      transcriptEmpty: byId('detail-transcript-empty'),
      remove: byId('detail-delete'),
      confirm: byId('confirm-delete'),
    };
    this.next = null;
    this.selected = null;
    this.loaded = false;
    this.els.more.addEventListener('click', () => this.loadPage(this.next));
    this.els.refresh.addEventListener('click', () => this.show(this.selected));
    this.els.remove.addEventListener('click', () => this.confirmDelete());
    this.els.confirm.addEventListener('close', () => {
      if (this.els.confirm.returnValue === 'delete') this.deleteSelected();
    });
  }

  message(content, kind = 'error') {
    showMessage(this.els.message, content, kind);
  }

  /**
   * Shows the history with `sessionId` open (or none). `fresh` reloads the
   * list (coming from another view); otherwise only the selection changes.
   */
  async enter(sessionId, fresh) {
    if (fresh || !this.loaded) {
      await this.show(sessionId);
    } else if (sessionId) {
      if (sessionId !== this.selected) await this.open(sessionId);
    } else {
      this.closeDetail();
    }
  }

  /** Loads the first page; then opens `sessionId` if given (a link from the live page). */
  async show(sessionId) {
    this.loaded = true;
    this.message('');
    this.next = null;
    this.els.list.replaceChildren();
    await this.loadPage(null);
    if (sessionId) await this.open(sessionId);
    else if (this.selected && !this.itemFor(this.selected)) this.closeDetail();
  }

  async loadPage(before) {
    this.els.more.disabled = true;
    this.els.list.setAttribute('aria-busy', 'true');
    try {
      const page = await api.sessions({ limit: PAGE_SIZE, before });
      for (const s of page.sessions) this.els.list.append(this.item(s));
      this.next = page.next || null;
    } catch (error) {
      if (error.status !== 401) this.message(`The recordings could not be loaded: ${error.message}`);
    } finally {
      this.els.list.removeAttribute('aria-busy');
      this.els.more.hidden = !this.next;
      this.els.more.disabled = false;
      this.els.empty.hidden = this.els.list.childElementCount > 0;
    }
  }

  itemFor(id) {
    return [...this.els.list.children].find((li) => li.dataset.sessionId === id) || null;
  }

  item(s) {
    const status = STATUS_TEXT[s.status] || s.status;
    const button = h('button', { type: 'button', class: 'history-item-button', 'aria-current': s.id === this.selected ? 'true' : null },
      h('span', { class: 'when' }, dateTime(s.started_at_ms)),
      h('span', { class: 'facts' },
        h('span', { class: 'duration' }, duration(s.duration_s)),
        h('span', { class: 'engine' }, s.engine || '—'),
        h('span', { class: `status status-${s.status}` }, status)),
    );
    button.addEventListener('click', () => {
      this.onNavigate(`/history?session=${encodeURIComponent(s.id)}`);
    });
    return h('li', { class: 'history-item', dataset: { testid: 'history-item', sessionId: s.id, status: s.status } }, button);
  }

  markSelected() {
    for (const li of this.els.list.children) {
      const button = li.querySelector('button');
      if (li.dataset.sessionId === this.selected) button.setAttribute('aria-current', 'true');
      else button.removeAttribute('aria-current');
    }
  }

  closeDetail() {
    this.selected = null;
    this.els.detail.hidden = true;
    this.els.audio.removeAttribute('src');
    this.els.audio.load();
    this.markSelected();
  }

  async open(id) {
    this.selected = id;
    this.markSelected();
    let s;
    try {
      s = await api.session(id);
    } catch (error) {
      if (error.status === 404) this.message('That recording does not exist (or was deleted).');
      else if (error.status !== 401) this.message(`The recording could not be loaded: ${error.message}`);
      this.closeDetail();
      return;
    }
    if (this.selected !== id) return;
    const base = api.sessionPath(id);
    this.els.title.textContent = dateTime(s.started_at_ms);
    this.els.meta.textContent = [
      duration(s.duration_s),
      s.engine,
      rate(s.input_rate),
      STATUS_TEXT[s.status] || s.status,
    ].filter(Boolean).join(' · ');
    this.els.detail.dataset.sessionId = id;
    const live = s.status === 'live';
    this.els.audio.hidden = live;
    if (live) this.els.audio.removeAttribute('src');
    else if (this.els.audio.getAttribute('src') !== `${base}/audio`) this.els.audio.src = `${base}/audio`;
    for (const format of EXPORTS) {
      const link = byId(`export-${format}`);
      link.href = `${base}/transcript?format=${format}`;
      link.setAttribute('download', `${id}.${format}`);
    }
    this.els.remove.disabled = live;
    this.els.detail.hidden = false;
    // On a narrow screen the details are below the list: bring them into view.
    if (window.matchMedia('(max-width: 44rem)').matches) this.els.detail.scrollIntoView({ block: 'start' });
    await this.loadTranscript(id, live);
  }

  async loadTranscript(id, live) {
    const list = this.els.transcript;
    const empty = this.els.transcriptEmpty;
    list.replaceChildren();
    delete list.dataset.sessionId;
    if (live) {
      showMessage(empty, 'Still recording: the transcript is here once the recording is saved.', 'info');
      return;
    }
    showMessage(empty, 'Loading the transcript…', 'info');
    list.setAttribute('aria-busy', 'true');
    try {
      const transcript = await api.transcript(id);
      if (this.selected !== id) return;
      const segments = (transcript.segments || []).filter((s) => (s.text || '').trim());
      list.replaceChildren(...segments.map((s) =>
        h('li', { class: 'final' },
          h('time', { class: 'stamp', datetime: `PT${Number(s.start).toFixed(1)}S` }, `[${clock(s.start)}]`),
          ' ',
          h('span', { class: 'text' }, s.text.trim()))));
      // Marks which session the list shows, once it is complete.
      list.dataset.sessionId = id;
      showMessage(empty, segments.length ? '' : 'No words were recognised in this recording.', 'info');
    } catch (error) {
      if (error.status !== 401) showMessage(empty, `The transcript could not be loaded: ${error.message}`, 'error');
    } finally {
      if (this.selected === id) list.removeAttribute('aria-busy');
    }
  }

  confirmDelete() {
    if (!this.selected) return;
    this.els.confirm.returnValue = '';
    this.els.confirm.showModal();
  }

  async deleteSelected() {
    const id = this.selected;
    if (!id) return;
    try {
      await api.deleteSession(id);
    } catch (error) {
      if (error.code === 'session_live') this.message('This recording is still in progress; stop it before deleting it.');
      else if (error.status === 404) this.message('That recording was already deleted.');
      else if (error.status !== 401) this.message(`The recording could not be deleted: ${error.message}`);
      if (error.status !== 404) return;
    }
    const li = this.itemFor(id);
    if (li) li.remove();
    this.els.empty.hidden = this.els.list.childElementCount > 0;
    this.closeDetail();
    this.onNavigate('/history', { replace: true });
    this.message('The recording was deleted.', 'success');
  }
}
