// Project settings: the shipyard, the git upstream, deleting the project.

import { api, enc } from '../api.js';
import { dialog, h, replace, showError } from '../ui.js';
import { navigate, projectNav } from '../app.js';

export async function settingsView(main, [projectName]) {
  const project = await api(`/controlPlane/v1/project/${enc(projectName)}`);
  const shipyard = project.shipyard || '';
  const git = project.gitCredentials;
  const remove = h('button', { type: 'button', class: 'danger', id: 'delete-project-button', onclick: () => {
    const confirmName = h('input', { id: 'confirm-project', autocomplete: 'off' });
    const status = h('div', { 'aria-live': 'polite' });
    const yes = h('button', { type: 'button', class: 'danger', id: 'delete-project-submit' }, 'Delete project');
    const no = h('button', { type: 'button' }, 'Cancel');
    const box = dialog(`Delete ${projectName}?`, h('form', { onsubmit: (event) => { event.preventDefault(); yes.click(); } },
      h('p', {}, 'This deletes the project, its sequences and its repository. Type the project name to confirm.'),
      h('label', { for: 'confirm-project' }, 'Project name'), confirmName, status), [no, yes]);
    no.addEventListener('click', () => box.close());
    yes.addEventListener('click', async () => {
      if (confirmName.value.trim() !== projectName) {
        showError(new Error('The name does not match.'), status);
        return;
      }
      try {
        await api(`/controlPlane/v1/project/${enc(projectName)}`, { method: 'DELETE' });
        box.close();
        navigate('/');
      } catch (error) {
        showError(error, status);
      }
    });
    confirmName.focus();
  } }, 'Delete project');
  replace(main,
    h('div', { class: 'heading' }, h('h1', {}, projectName, ' · Settings')),
    projectNav(projectName, 'settings'),
    h('section', { class: 'card' }, h('h2', {}, 'Git upstream'),
      git && git.remoteURL
        ? h('dl', {}, h('dt', {}, 'Remote URL'), h('dd', {}, git.remoteURL), h('dt', {}, 'User'), h('dd', {}, git.user || '—'))
        : h('p', { class: 'muted' }, 'No upstream: the project lives in Keelson\'s own repository. Set one with keptn update project --git-remote-url.')),
    h('section', { class: 'card' }, h('h2', {}, `Shipyard (version ${project.shipyardVersion || '?'})`), h('pre', { id: 'shipyard' }, shipyard)),
    h('section', { class: 'card danger-zone' }, h('h2', {}, 'Danger zone'), remove));
}
