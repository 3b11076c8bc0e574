import { api, enc } from '../api.js';
import { dialog, empty, h, link, outcomeBadge, refreshed, replace, showError, time } from '../ui.js';
import { navigate } from '../app.js';

const EXAMPLE_SHIPYARD = `apiVersion: spec.keptn.sh/0.2.2
kind: Shipyard
metadata:
  name: shipyard
spec:
  stages:
    - name: dev
      sequences:
        - name: delivery
          tasks:
            - name: deployment
            - name: evaluation
              properties:
                timeframe: 5m
    - name: production
      sequences:
        - name: delivery
          triggeredOn:
            - event: dev.delivery.finished
          tasks:
            - name: approval
              properties:
                pass: manual
                warning: manual
            - name: deployment
`;

function createProjectDialog() {
  const create = h('button', { type: 'button', class: 'primary', id: 'create-project-submit' }, 'Create project');
  const name = h('input', { id: 'project-name', name: 'name', required: true, pattern: '[a-z]([a-z0-9\\-]*[a-z0-9])?', autocomplete: 'off' });
  const shipyard = h('textarea', { id: 'project-shipyard', name: 'shipyard', rows: 16, required: true, spellcheck: 'false' }, EXAMPLE_SHIPYARD);
  const remote = h('input', { id: 'project-remote', name: 'remote', type: 'url', placeholder: 'https://git.example/repo.git (optional)' });
  const user = h('input', { id: 'project-git-user', name: 'user', autocomplete: 'off' });
  const gitToken = h('input', { id: 'project-git-token', name: 'gitToken', type: 'password', autocomplete: 'off' });
  const status = h('div', { 'aria-live': 'polite' });
  const form = h('form', { id: 'create-project', onsubmit: (event) => { event.preventDefault(); create.click(); } },
    h('label', { for: 'project-name' }, 'Project name'), name,
    h('p', { class: 'hint' }, 'Lowercase letters, digits and dashes, starting with a letter.'),
    h('label', { for: 'project-shipyard' }, 'Shipyard'), shipyard,
    h('details', {}, h('summary', {}, 'Git upstream (optional)'),
      h('label', { for: 'project-remote' }, 'Remote URL'), remote,
      h('label', { for: 'project-git-user' }, 'User'), user,
      h('label', { for: 'project-git-token' }, 'Token'), gitToken),
    status);
  const cancel = h('button', { type: 'button' }, 'Cancel');
  const box = dialog('Create a project', form, [cancel, create]);
  cancel.addEventListener('click', () => box.close());
  create.addEventListener('click', async () => {
    if (!form.reportValidity()) return;
    const body = { name: name.value.trim(), shipyard: btoa(unescape(encodeURIComponent(shipyard.value))) };
    if (remote.value.trim()) body.gitCredentials = { remoteURL: remote.value.trim(), user: user.value.trim(), https: { token: gitToken.value } };
    create.disabled = true;
    try {
      await api('/controlPlane/v1/project', { method: 'POST', body });
      box.close();
      navigate(`/project/${enc(body.name)}`);
    } catch (error) {
      showError(error, status);
    } finally {
      create.disabled = false;
    }
  });
  name.focus();
}

// The latest sequences of a project, or the error that kept them away.
async function latestSequences(project) {
  try {
    const data = await api(`/controlPlane/v1/sequence/${enc(project.projectName)}?pageSize=3`);
    return { states: data.states || [] };
  } catch (error) {
    return { error: error.message };
  }
}

function projectTile(project, latest) {
  const stages = project.stages || [];
  const services = new Set(stages.flatMap((stage) => (stage.services || []).map((service) => service.serviceName)));
  const sequences = h('ul', { class: 'plain' }, latest.error ? h('li', { class: 'error' }, latest.error)
    : latest.states.length === 0 ? h('li', { class: 'muted' }, 'No sequences yet')
      : latest.states.map((state) => h('li', {},
        outcomeBadge(state), ' ',
        link(`/bridge/project/${enc(project.projectName)}/sequence/${enc(state.shkeptncontext)}`, `${state.name} · ${state.service}`),
        h('span', { class: 'muted' }, ` ${time(state.time)}`))));
  return h('article', { class: 'card tile', dataset: { project: project.projectName } },
    h('h2', {}, link(`/bridge/project/${enc(project.projectName)}`, project.projectName)),
    h('p', { class: 'muted' }, `${stages.length} stage${stages.length === 1 ? '' : 's'} · ${services.size} service${services.size === 1 ? '' : 's'}`),
    h('ol', { class: 'stages' }, stages.map((stage) => h('li', {}, link(`/bridge/project/${enc(project.projectName)}/stage/${enc(stage.stageName)}`, stage.stageName)))),
    h('h3', {}, 'Latest sequences'),
    sequences);
}

export async function dashboardView(main, _params, context) {
  const create = h('button', { type: 'button', class: 'primary', id: 'create-project-button', onclick: createProjectDialog }, 'Create project');
  const grid = h('div', { class: 'grid' });
  replace(main, h('div', { class: 'heading' }, h('h1', {}, 'Projects'), create), grid);
  async function refresh() {
    const data = await api('/controlPlane/v1/project?pageSize=50');
    const projects = data.projects || [];
    // Live like every screen: the tiles' latest sequences are part of what is compared.
    const latest = await Promise.all(projects.map(latestSequences));
    const fingerprint = JSON.stringify([
      projects.map((p) => [p.projectName, p.stages.map((s) => [s.stageName, s.services.length])]),
      latest.map((l) => l.error || l.states.map((s) => [s.shkeptncontext, s.state, s.result])),
    ]);
    if (grid.dataset.fingerprint === fingerprint) return;
    if (projects.length === 0) {
      refreshed(grid, fingerprint, empty('There are no projects yet. Create one with a shipyard that names your stages and sequences.', h('button', { type: 'button', class: 'primary', onclick: createProjectDialog }, 'Create your first project')));
      return;
    }
    refreshed(grid, fingerprint, projects.map((project, index) => projectTile(project, latest[index])));
  }
  await refresh();
  context.every(5000, refresh);
}
