// Talks to Keelson's public API with the token kept in session storage.

const TOKEN_KEY = 'keelson.token';

export function token() {
  return sessionStorage.getItem(TOKEN_KEY);
}

export function setToken(value) {
  if (value) sessionStorage.setItem(TOKEN_KEY, value);
  else sessionStorage.removeItem(TOKEN_KEY);
}

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

// Called with no arguments when the API refuses the token.
let onUnauthorized = () => {};
export function whenUnauthorized(callback) {
  onUnauthorized = callback;
}

export async function api(path, { method = 'GET', body, tokenOverride } = {}) {
  const headers = { 'x-token': tokenOverride ?? token() ?? '' };
  if (body !== undefined) headers['content-type'] = 'application/json';
  let response;
  try {
    response = await fetch(`/api${path}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  } catch (error) {
    throw new ApiError(0, `Keelson is not reachable (${error.message})`);
  }
  const text = await response.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = text;
  }
  if (response.status === 401 && tokenOverride === undefined) onUnauthorized();
  if (!response.ok) {
    const message = (data && data.message) || (typeof data === 'string' && data) || response.statusText;
    throw new ApiError(response.status, message);
  }
  return data;
}

export const enc = encodeURIComponent;

// Every event of a Keptn context, oldest first.
export async function contextEvents(project, context) {
  const events = [];
  let next = '';
  for (let page = 0; page < 20; page++) {
    const data = await api(`/mongodb-datastore/event?project=${enc(project)}&keptnContext=${enc(context)}&pageSize=100${next ? `&nextPageKey=${enc(next)}` : ''}`);
    events.push(...(data.events || []));
    if (!data.nextPageKey || data.nextPageKey === '0') break;
    next = data.nextPageKey;
  }
  return events.reverse();
}

export async function openApprovals(project) {
  const data = await api(`/controlPlane/v1/event/triggered/sh.keptn.event.approval.triggered?project=${enc(project)}&pageSize=100`);
  return data.events || [];
}

// Sends an event through the API; returns the Keptn context.
export async function sendEvent(event) {
  const answer = await api('/v1/event', { method: 'POST', body: { specversion: '1.0', source: 'https://github.com/keptn/keptn/bridge', ...event } });
  return answer && answer.keptnContext;
}

export async function decideApproval(approval, approve) {
  return sendEvent({
    type: 'sh.keptn.event.approval.finished',
    shkeptncontext: approval.shkeptncontext,
    triggeredid: approval.id,
    data: {
      project: approval.data.project, stage: approval.data.stage, service: approval.data.service,
      labels: approval.data.labels || {}, status: 'succeeded', result: approve ? 'pass' : 'fail',
    },
  });
}
