// Small DOM helpers shared by the views.

// h('a', {href: '/x', class: 'c', onclick: fn}, 'text', child, [children])
export function h(tag, attributes = {}, ...children) {
  const element = document.createElement(tag);
  for (const [key, value] of Object.entries(attributes || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith('on') && typeof value === 'function') element.addEventListener(key.slice(2), value);
    else if (key === 'dataset') Object.assign(element.dataset, value);
    else if (value === true) element.setAttribute(key, '');
    else element.setAttribute(key, value);
  }
  append(element, children);
  return element;
}

function append(element, children) {
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    element.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

export function link(path, ...children) {
  return h('a', { href: path, 'data-link': true }, ...children);
}

export function replace(element, ...children) {
  element.replaceChildren();
  append(element, children);
}

const RESULT_CLASSES = { pass: 'ok', succeeded: 'ok', finished: 'ok', warning: 'warn', fail: 'bad', failed: 'bad', errored: 'bad', aborted: 'bad', timedOut: 'bad', started: 'busy', triggered: 'busy', waiting: 'idle', paused: 'idle', waitingForApproval: 'warn' };

export function badge(text, title) {
  return h('span', { class: `badge ${RESULT_CLASSES[text] || 'idle'}`, title: title || text }, text || 'n/a');
}

// How a sequence or stage stands, in a word and a colour: while it runs its state; once it ended its
// result — a sequence whose status is "succeeded" but whose gate failed or whose approval was declined
// ended "failed", and is red.
export function outcome(item) {
  const state = item && item.state;
  const result = item && item.result;
  let word = state || 'n/a';
  let kind = RESULT_CLASSES[state] || 'idle';
  if (state === 'aborted') [word, kind] = ['aborted', 'bad'];
  else if (state === 'timedOut') [word, kind] = ['timed out', 'bad'];
  else if (state === 'errored') [word, kind] = ['errored', 'bad'];
  else if (['finished', 'succeeded'].includes(state)) {
    if (result === 'fail') [word, kind] = ['failed', 'bad'];
    else if (result === 'warning') [word, kind] = ['warning', 'warn'];
    else [word, kind] = ['succeeded', 'ok'];
  }
  return { word, kind };
}

export function outcomeBadge(item) {
  const { word, kind } = outcome(item);
  const title = item && item.result ? `${item.state}, result ${item.result}` : (item && item.state) || '';
  return h('span', { class: `badge ${kind}`, title, dataset: { outcome: kind } }, word);
}

export function time(value) {
  if (!value) return '';
  const date = new Date(value);
  return Number.isNaN(date.getTime()) ? String(value) : date.toLocaleString();
}

export function shortType(type) {
  return String(type || '').replace(/^sh\.keptn\.event\./, '');
}

// An error shown in place: in the element, or in the global notice area.
export function showError(error, where) {
  const message = error && error.message ? error.message : String(error);
  const box = h('p', { class: 'error', role: 'alert' }, message);
  if (where) replace(where, box);
  else replace(document.getElementById('notice'), box);
  return box;
}

export function clearNotice() {
  document.getElementById('notice').replaceChildren();
}

export function empty(message, ...next) {
  return h('div', { class: 'empty' }, h('p', {}, message), ...next);
}

// A modal dialog (native <dialog>: focus trapped, Esc closes); returns it opened.
export function dialog(title, body, actions) {
  const element = h('dialog', { 'aria-label': title }, h('h2', {}, title), body, h('div', { class: 'actions' }, actions));
  element.addEventListener('close', () => element.remove());
  document.body.append(element);
  element.showModal();
  return element;
}

// Re-renders `element` with `children` unless `fingerprint` is what it last showed; the focused
// control is found again (by id, or by its data-focus key) so polling never steals keyboard focus.
export function refreshed(element, fingerprint, ...children) {
  if (element.dataset.fingerprint === fingerprint) return false;
  const active = document.activeElement;
  const key = active && element.contains(active) ? (active.id ? `#${CSS.escape(active.id)}` : active.dataset.focus ? `[data-focus="${CSS.escape(active.dataset.focus)}"]` : null) : null;
  element.dataset.fingerprint = fingerprint;
  replace(element, ...children);
  if (key) {
    const again = element.querySelector(key);
    if (again) again.focus();
  }
  return true;
}

// Runs `action` with `button` disabled; shows a failure next to it (in `where`) and re-enables it.
export async function busy(button, where, action) {
  button.disabled = true;
  try {
    await action();
  } catch (error) {
    showError(error, where);
    button.disabled = false;
  }
}
