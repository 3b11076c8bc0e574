// Integrations (uniform): who is registered, where it runs, when it was last seen, what it subscribes to,
// and the latest entries of its log (what a service reported: a job's output, an error).

import { api } from '../api.js';
import { empty, h, refreshed, replace, time } from '../ui.js';
import { projectNav } from '../app.js';

// Log entries shown per integration (the newest).
const LOG_ENTRIES = 20;

function logView(page) {
  const entries = (page && page.logs) || [];
  if (entries.length === 0) return h('span', { class: 'muted' }, 'empty');
  const total = page.totalCount || entries.length;
  return h('details', { class: 'log' },
    h('summary', {}, total === 1 ? '1 entry' : `${total} entries`, total > entries.length ? ` (latest ${entries.length})` : '',
      ' · ', time(entries[0].time)),
    entries.map((entry) => h('div', { class: 'log-entry' },
      h('div', { class: 'muted' }, time(entry.time), entry.task ? ` · ${entry.task}` : '', entry.shkeptncontext ? ` · ${entry.shkeptncontext}` : ''),
      h('pre', {}, entry.message))));
}

export async function integrationsView(main, [projectName], context) {
  const content = h('div', { id: 'integrations' });
  replace(main, h('div', { class: 'heading' }, h('h1', {}, projectName, ' · Integrations')), projectNav(projectName, 'integrations'), content);
  async function refresh() {
    const integrations = await api('/controlPlane/v1/uniform/registration');
    const logs = await Promise.all((integrations || []).map((integration) =>
      api(`/controlPlane/v1/log?integrationId=${encodeURIComponent(integration.id)}&pageSize=${LOG_ENTRIES}`)));
    // lastseen changes with every ping: left out, so a quiet list is not redrawn.
    const fingerprint = JSON.stringify([(integrations || []).map((i) => [i.id, i.metadata.location, i.subscriptions]), logs]);
    if (!integrations || integrations.length === 0) {
      refreshed(content, fingerprint, empty('No integration is registered. Execution-plane services register themselves when they start (see the SDK).'));
      return;
    }
    refreshed(content, fingerprint, h('div', { class: 'table-wrap' }, h('table', { class: 'list' },
      h('thead', {}, h('tr', {}, ['Name', 'Location', 'Version', 'Last seen', 'Subscriptions', 'Log'].map((title) => h('th', { scope: 'col' }, title)))),
      h('tbody', {}, integrations.map((integration, index) => h('tr', { dataset: { integration: integration.name } },
        h('th', { scope: 'row' }, integration.name),
        h('td', {}, integration.metadata.location || ''),
        h('td', {}, integration.metadata.integrationversion || ''),
        h('td', {}, time(integration.metadata.lastseen)),
        h('td', {}, (integration.subscriptions || []).length === 0 ? h('span', { class: 'muted' }, 'none') :
          h('ul', { class: 'plain' }, integration.subscriptions.map((subscription) => h('li', {}, h('code', {}, subscription.event),
            (subscription.filter.projects || []).length ? ` · projects ${subscription.filter.projects.join(', ')}` : '',
            (subscription.filter.stages || []).length ? ` · stages ${subscription.filter.stages.join(', ')}` : '',
            (subscription.filter.services || []).length ? ` · services ${subscription.filter.services.join(', ')}` : '')))),
        h('td', {}, logView(logs[index]))))))));
  }
  await refresh();
  context.every(10000, refresh);
}
