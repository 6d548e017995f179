// The HTTP API (docs/api.md): JSON in and out, errors as ApiError with the
// server's stable code. A 401 from any call (the login expired: automatic
// logoff after 15 minutes without a request) is reported to one handler.

export class ApiError extends Error {
  constructor(status, code, message, retryAfter = null) {
    super(message);
    this.status = status;
    this.code = code;
    this.retryAfter = retryAfter;
  }
}

let onUnauthorized = () => {};

/** `handler(error)` runs when a call (other than the login itself) gets 401. */
export function setUnauthorizedHandler(handler) {
  onUnauthorized = handler;
}

async function errorFrom(response) {
  let code = `http_${response.status}`;
  let message = response.statusText || `HTTP ${response.status}`;
  try {
    const body = await response.json();
    if (body && body.error) {
      code = body.error.code || code;
      message = body.error.message || message;
    }
  } catch {
    // Not JSON (a proxy's error page): keep the status.
  }
  const retry = Number(response.headers.get('Retry-After'));
  return new ApiError(response.status, code, message, Number.isFinite(retry) && retry > 0 ? retry : null);
}

/**
 * Calls `path` and returns its JSON body (null for 204). Throws ApiError for
 * an HTTP error and for a network failure (status 0, code `network`).
 */
export async function api(path, { method = 'GET', body, quiet401 = false } = {}) {
  const init = { method, credentials: 'same-origin', headers: { Accept: 'application/json' } };
  if (body !== undefined) {
    init.headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch {
    throw new ApiError(0, 'network', 'The server cannot be reached. Check the connection and try again.');
  }
  if (!response.ok) {
    const error = await errorFrom(response);
    if (error.status === 401 && !quiet401) onUnauthorized(error);
    throw error;
  }
  if (response.status === 204) return null;
  const type = response.headers.get('Content-Type') || '';
  return type.includes('json') ? response.json() : response.text();
}

/** Who is signed in: `{user, via}`, or null when not logged in (401). */
export async function whoAmI() {
  try {
    return await api('/v1/auth/me', { quiet401: true });
  } catch (error) {
    if (error.status === 401) return null;
    throw error;
  }
}

export function login(username, password) {
  return api('/v1/auth/login', { method: 'POST', body: { username, password }, quiet401: true });
}

export function logout() {
  return api('/v1/auth/logout', { method: 'POST', quiet401: true });
}

export function engines() {
  return api('/v1/engines');
}

export function sessions({ limit = 20, before = null } = {}) {
  const query = new URLSearchParams({ limit: String(limit) });
  if (before) query.set('before', before);
  return api(`/v1/sessions?${query}`);
}

export function sessionPath(id) {
  return `/v1/sessions/${encodeURIComponent(id)}`;
}

export function session(id) {
  return api(sessionPath(id));
}

export function transcript(id) {
  return api(`${sessionPath(id)}/transcript?format=json`);
}

export function deleteSession(id) {
  return api(sessionPath(id), { method: 'DELETE' });
}
