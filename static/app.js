// The clinician's page: signs in (or not, in local mode), then routes between
// the live page (`/`) and the history (`/history`) without reloading, so a
// recording goes on while the history is open.

import * as api from './api.js';
import { byId } from './dom.js';
import { HistoryView } from './history.js';
import { LiveView } from './live.js';
import { LoginView } from './login.js';

const EXPIRED = 'Your login has ended (after 15 minutes without activity, or elsewhere). Sign in again to go on.';

const els = {
  boot: byId('boot-message'),
  nav: byId('nav'),
  account: byId('account'),
  user: byId('account-user'),
  logout: byId('logout'),
  main: byId('main'),
  views: {
    login: byId('login-view'),
    live: byId('live-view'),
    history: byId('history-view'),
  },
};

let me = null;
let shown = null;

const live = new LiveView({ onUnauthorized: () => requireLogin(EXPIRED) });
const historyView = new HistoryView({ onNavigate: navigate });
const loginView = new LoginView({ onLogin: enter });
api.setUnauthorizedHandler(() => requireLogin(EXPIRED));

function showView(name) {
  els.boot.hidden = true;
  for (const [key, el] of Object.entries(els.views)) el.hidden = key !== name;
  for (const link of els.nav.querySelectorAll('a[data-route]')) {
    if (link.dataset.route === name) link.setAttribute('aria-current', 'page');
    else link.removeAttribute('aria-current');
  }
  document.title = { login: 'Sign in', live: 'Record', history: 'History' }[name] + ' · Auscult';
}

function requireLogin(message = '', kind = 'info') {
  if (shown === 'login') return;
  me = null;
  shown = 'login';
  historyView.loaded = false;
  els.nav.hidden = true;
  els.account.hidden = true;
  showView('login');
  loginView.show(message, kind);
}

async function enter(who) {
  me = who;
  els.user.textContent = who.user;
  // Local mode (loopback, no accounts) and token callers have nothing to log out of.
  els.logout.hidden = who.via !== 'cookie';
  els.account.hidden = false;
  els.nav.hidden = false;
  shown = null;
  route();
  await live.loadEngines();
}

function route() {
  if (!me) return;
  const name = window.location.pathname === '/history' ? 'history' : 'live';
  const fresh = shown !== name;
  shown = name;
  showView(name);
  if (fresh) els.main.focus({ preventScroll: true });
  if (name === 'history') {
    const session = new URLSearchParams(window.location.search).get('session');
    historyView.enter(session, fresh);
  }
}

function navigate(path, { replace = false } = {}) {
  if (replace) window.history.replaceState(null, '', path);
  else window.history.pushState(null, '', path);
  route();
}

document.addEventListener('click', (event) => {
  const link = event.target.closest('a[data-link]');
  if (!link || event.defaultPrevented || event.button !== 0) return;
  if (event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
  const url = new URL(link.href, window.location.href);
  if (url.origin !== window.location.origin) return;
  event.preventDefault();
  if (url.pathname + url.search !== window.location.pathname + window.location.search) {
    navigate(url.pathname + url.search);
  }
});

window.addEventListener('popstate', route);

els.logout.addEventListener('click', async () => {
  if (live.recording) {
    live.message('Stop the recording before signing out.', 'info');
    return;
  }
  try {
    await api.logout();
  } catch {
    // Signed out either way: the cookie session is gone or unreachable.
  }
  requireLogin('You are signed out.', 'success');
});

async function boot() {
  let who;
  try {
    who = await api.whoAmI();
  } catch (error) {
    els.boot.textContent = `The server cannot be reached (${error.message}). Reload the page to try again.`;
    return;
  }
  if (who) await enter(who);
  else requireLogin();
}

boot();
