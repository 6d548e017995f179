// Small DOM helpers: elements are built with textContent, never innerHTML,
// so transcript text and server data can never become markup.

/** `h('li', {class: 'x', dataset: {testid: 'y'}}, 'text', child)` */
export function h(tag, props = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === 'class') el.className = value;
    else if (key === 'dataset') Object.assign(el.dataset, value);
    else if (key === 'text') el.textContent = value;
    else if (key.startsWith('on') && typeof value === 'function') el.addEventListener(key.slice(2), value);
    else if (value === true) el.setAttribute(key, '');
    else el.setAttribute(key, String(value));
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

/** The element with this id; throws early when the page and script disagree. */
export function byId(id) {
  const el = document.getElementById(id);
  if (!el) throw new Error(`#${id} is missing from the page`);
  return el;
}

/**
 * Shows `content` (text, or an array of text and nodes) in a message element,
 * hidden when empty. `kind` is error (announced at once), info or success.
 */
export function showMessage(el, content, kind = 'error') {
  const parts = Array.isArray(content) ? content : [content];
  el.replaceChildren(...parts.filter((p) => p !== null && p !== undefined && p !== ''));
  el.dataset.kind = kind;
  el.setAttribute('role', kind === 'error' ? 'alert' : 'status');
  el.hidden = el.childNodes.length === 0;
}
