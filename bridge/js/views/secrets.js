// Secrets: names, scopes and keys only (values never leave Keelson).

import { api } from '../api.js';
import { empty, h, replace } from '../ui.js';

export async function secretsView(main) {
  const data = await api('/secrets/v1/secret');
  const secrets = data.Secrets || [];
  replace(main, h('div', { class: 'heading' }, h('h1', {}, 'Secrets')),
    h('p', { class: 'muted' }, 'Values are encrypted and never shown. Create secrets with keptn create secret NAME --from-literal key=value.'),
    secrets.length === 0 ? empty('No secrets yet. Webhooks read secrets as {{.env.name}} once you create one.') :
      h('div', { class: 'table-wrap' }, h('table', { class: 'list', id: 'secrets' },
        h('thead', {}, h('tr', {}, ['Name', 'Scope', 'Keys'].map((title) => h('th', { scope: 'col' }, title)))),
        h('tbody', {}, secrets.map((secret) => h('tr', {}, h('th', { scope: 'row' }, secret.name), h('td', {}, secret.scope), h('td', {}, (secret.keys || []).join(', '))))))));
}
