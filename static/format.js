// Formatting of times, durations and sizes for display.

function pad(n) {
  return String(n).padStart(2, '0');
}

/** Seconds as `mm:ss` (or `h:mm:ss` from an hour on). */
export function clock(seconds) {
  const total = Math.max(0, Math.floor(seconds || 0));
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  const s = total % 60;
  return h > 0 ? `${h}:${pad(m)}:${pad(s)}` : `${pad(m)}:${pad(s)}`;
}

/** A duration in words for lists: `45 s`, `3 min 05 s`, `1 h 02 min`. */
export function duration(seconds) {
  if (seconds === null || seconds === undefined) return '—';
  // Whole seconds, rounded down like the timer and the audio player.
  const total = Math.floor(seconds);
  if (total < 60) return `${total} s`;
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  const s = total % 60;
  return h > 0 ? `${h} h ${pad(m)} min` : `${m} min ${pad(s)} s`;
}

const DATE_TIME = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'short' });

/** Milliseconds since the epoch as a local date and time. */
export function dateTime(ms) {
  return ms ? DATE_TIME.format(new Date(ms)) : '—';
}

/** A sample rate as `16 kHz`. */
export function rate(hz) {
  return hz ? `${Math.round(hz / 100) / 10} kHz` : '—';
}
