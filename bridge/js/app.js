// The Bridge: routes, navigation and session. Every screen is a module under views/.

import { api, setToken, token, whenUnauthorized } from './api.js';
import { h, link, replace, clearNotice, showError } from './ui.js';
import { loginView } from './views/login.js';
import { dashboardView } from './views/dashboard.js';
import { environmentView } from './views/environment.js';
import { sequencesView, sequenceView } from './views/sequences.js';
import { evaluationView, evaluationsView } from './views/evaluations.js';
import { integrationsView } from './views/integrations.js';
import { settingsView } from './views/settings.js';
import { secretsView } from './views/secrets.js';

const BASE = '/bridge';

const routes = [
  [/^\/login$/, loginView, false],
  [/^\/?$/, dashboardView],
  [/^\/project\/([^/]+)$/, environmentView],
  [/^\/project\/([^/]+)\/stage\/([^/]+)$/, environmentView],
  [/^\/project\/([^/]+)\/sequence$/, sequencesView],
  [/^\/project\/([^/]+)\/sequence\/([^/]+)$/, sequenceView],
  [/^\/project\/([^/]+)\/sequence\/([^/]+)\/stage\/([^/]+)$/, sequenceView],
  [/^\/project\/([^/]+)\/evaluation$/, evaluationsView],
  [/^\/project\/([^/]+)\/evaluation\/([^/]+)$/, evaluationView],
  [/^\/project\/([^/]+)\/integrations$/, integrationsView],
  [/^\/project\/([^/]+)\/settings$/, settingsView],
  [/^\/secrets$/, secretsView],
];

// The current screen: a render that is no longer current writes into a detached element and stops
// polling, so a slow screen never overwrites the one the user went to.
let generation = 0;
let timers = [];

function stopTimers() {
  timers.forEach(clearTimeout);
  timers = [];
}

function setLiveStatus(error) {
  const status = document.getElementById('live-status');
  status.textContent = error ? `Live updates failing: ${error.message || error}` : '';
  status.hidden = !error;
}

export function navigate(path, { replaceState = false } = {}) {
  const url = path.startsWith(BASE) ? path : `${BASE}${path}`;
  if (replaceState) history.replaceState(null, '', url);
  else history.pushState(null, '', url);
  render();
}

// The project's tabs, shown above every project screen.
export function projectNav(project, active) {
  const tab = (path, label, key) =>
    h('a', { href: `${BASE}/project/${encodeURIComponent(project)}${path}`, 'data-link': true, class: key === active ? 'tab active' : 'tab', 'aria-current': key === active ? 'page' : undefined }, label);
  return h('nav', { class: 'tabs', 'aria-label': 'Project' },
    tab('', 'Environment', 'environment'),
    tab('/sequence', 'Sequences', 'sequences'),
    tab('/evaluation', 'Evaluations', 'evaluations'),
    tab('/integrations', 'Integrations', 'integrations'),
    tab('/settings', 'Settings', 'settings'));
}

function breadcrumbs(path) {
  const parts = [link(`${BASE}/`, 'Projects')];
  const project = path.match(/^\/project\/([^/]+)/);
  if (project) parts.push(' / ', link(`${BASE}/project/${project[1]}`, decodeURIComponent(project[1])));
  if (path === '/secrets') parts.push(' / ', h('span', { 'aria-current': 'page' }, 'Secrets'));
  else parts.push(' · ', link(`${BASE}/secrets`, 'Secrets'));
  replace(document.getElementById('breadcrumbs'), parts);
}

async function render() {
  stopTimers();
  setLiveStatus(null);
  clearNotice();
  document.querySelectorAll('dialog[open]').forEach((open) => open.close());
  const gen = ++generation;
  const main = document.getElementById('main');
  const screen = h('div', { class: 'screen' });
  main.replaceChildren(screen);
  let path;
  try {
    path = decodeURI(location.pathname).slice(BASE.length) || '/';
  } catch {
    path = '/not-found';
  }
  const loggedIn = Boolean(token());
  document.getElementById('logout').hidden = !loggedIn;
  for (const [pattern, view, needsLogin = true] of routes) {
    const match = path.match(pattern);
    if (!match) continue;
    if (needsLogin && !loggedIn) {
      navigate(`/login?next=${encodeURIComponent(path + location.search)}`, { replaceState: true });
      return;
    }
    breadcrumbs(path);
    let params;
    try {
      params = match.slice(1).map(decodeURIComponent);
    } catch {
      break;
    }
    const context = {
      // Runs `refresh` every `ms` while this screen is shown (live updates); the next run is planned
      // when the previous one has settled, and failures show in the status line.
      every(ms, refresh) {
        const tick = async () => {
          if (gen !== generation) return;
          try {
            await refresh();
            setLiveStatus(null);
          } catch (error) {
            if (gen === generation && error.status !== 401) setLiveStatus(error);
          }
          if (gen === generation) timers.push(setTimeout(tick, ms));
        };
        if (gen === generation) timers.push(setTimeout(tick, ms));
      },
    };
    try {
      await view(screen, params, context);
    } catch (error) {
      // A refused token has already sent the user to the login screen.
      if (error.status !== 401) showError(error, screen);
    }
    if (gen === generation) main.focus({ preventScroll: true });
    return;
  }
  replace(screen, h('div', { class: 'empty' }, h('h1', {}, 'Page not found'), h('p', {}, link(`${BASE}/`, 'Go to the projects'))));
}

// Links marked data-link navigate without reloading the page.
document.addEventListener('click', (event) => {
  const anchor = event.target.closest('a[data-link]');
  if (!anchor || event.metaKey || event.ctrlKey || event.shiftKey || event.button !== 0) return;
  event.preventDefault();
  navigate(anchor.getAttribute('href'));
});
window.addEventListener('popstate', render);

whenUnauthorized(() => {
  setToken(null);
  if (!location.pathname.startsWith(`${BASE}/login`)) {
    navigate(`/login?next=${encodeURIComponent(location.pathname.slice(BASE.length) + location.search)}`, { replaceState: true });
  }
});

document.getElementById('logout').addEventListener('click', () => {
  setToken(null);
  document.getElementById('version').textContent = '';
  navigate('/login');
});

// The API's versions, shown in the header once logged in.
export function showVersion() {
  api('/v1/metadata').then((metadata) => {
    document.getElementById('version').textContent = `Keptn API ${metadata.keptnversion} · Keelson ${metadata.keelsonversion || ''}`;
  }).catch(() => {});
}

async function start() {
  if (location.pathname === BASE || location.pathname === `${BASE}/index.html`) history.replaceState(null, '', `${BASE}/`);
  if (token()) showVersion();
  await render();
}
start();
