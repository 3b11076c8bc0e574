// The environment: stages × services with what runs where, evaluations and open approvals.

import { api, decideApproval, enc, openApprovals } from '../api.js';
import { badge, busy, dialog, empty, h, link, outcome, outcomeBadge, refreshed, replace, showError, shortType } from '../ui.js';
import { projectNav } from '../app.js';
import { openTriggerDialog } from './trigger.js';

function createServiceDialog(project, done) {
  const name = h('input', { id: 'service-name', name: 'service', required: true, pattern: '[a-z]([a-z0-9\\-]*[a-z0-9])?', autocomplete: 'off' });
  const status = h('div', { 'aria-live': 'polite' });
  const create = h('button', { type: 'button', class: 'primary', id: 'create-service-submit' }, 'Create service');
  const form = h('form', { onsubmit: (event) => { event.preventDefault(); create.click(); } }, h('label', { for: 'service-name' }, 'Service name'), name, status);
  const cancel = h('button', { type: 'button' }, 'Cancel');
  const box = dialog('Create a service', form, [cancel, create]);
  cancel.addEventListener('click', () => box.close());
  create.addEventListener('click', async () => {
    if (!form.reportValidity()) return;
    try {
      await api(`/controlPlane/v1/project/${enc(project)}/service`, { method: 'POST', body: { serviceName: name.value.trim() } });
      box.close();
      done();
    } catch (error) {
      showError(error, status);
    }
  });
  name.focus();
}

export function approvalItem(approval, refresh, label) {
  const status = h('span', { 'aria-live': 'polite' });
  const decide = (approve) => (event) => busy(event.target, status, async () => {
    await decideApproval(approval, approve);
    await refresh();
  });
  const image = approval.data.configurationChange && approval.data.configurationChange.values && approval.data.configurationChange.values.image;
  return h('div', { class: 'approval', dataset: { approval: approval.id } },
    h('span', {}, label || 'Approval open', image ? ` for ${image}` : ''),
    h('button', { type: 'button', class: 'primary small', dataset: { focus: `approve:${approval.id}` }, onclick: decide(true) }, 'Approve'),
    h('button', { type: 'button', class: 'small', dataset: { focus: `decline:${approval.id}` }, onclick: decide(false) }, 'Decline'),
    status);
}

export async function environmentView(main, [projectName, onlyStage], context) {
  const content = h('div', { id: 'environment' });
  const heading = h('div', { class: 'heading' }, h('h1', {}, projectName, onlyStage ? ` · ${onlyStage}` : ''));
  replace(main, heading, projectNav(projectName, 'environment'), content);

  async function refresh() {
    const [project, states, approvals] = await Promise.all([
      api(`/controlPlane/v1/project/${enc(projectName)}`),
      api(`/controlPlane/v1/sequence/${enc(projectName)}?pageSize=100`).then((data) => data.states || []),
      openApprovals(projectName),
    ]);
    const fingerprint = JSON.stringify([project, states, approvals.map((a) => a.id)]);
    if (content.dataset.fingerprint === fingerprint) return;
    replace(heading, h('h1', {}, projectName, onlyStage ? ` · ${onlyStage}` : ''),
      h('div', { class: 'buttons' },
        h('button', { type: 'button', id: 'create-service-button', onclick: () => createServiceDialog(projectName, refresh) }, 'Create service'),
        h('button', { type: 'button', class: 'primary', id: 'trigger-button', onclick: () => openTriggerDialog(project) }, 'Trigger sequence')));
    const stages = (project.stages || []).filter((stage) => !onlyStage || stage.stageName === onlyStage);
    const services = [...new Set((project.stages || []).flatMap((stage) => (stage.services || []).map((s) => s.serviceName)))];
    if (services.length === 0) {
      refreshed(content, fingerprint, empty('This project has no services yet. Create one, then trigger a delivery for it.',
        h('button', { type: 'button', class: 'primary', onclick: () => createServiceDialog(projectName, refresh) }, 'Create a service')));
      return;
    }
    const cell = (stage, serviceName) => {
      const service = (stage.services || []).find((s) => s.serviceName === serviceName);
      if (!service) return h('td', { class: 'muted' }, '—');
      const own = states.filter((state) => state.service === serviceName && (state.stages || []).some((s) => s.name === stage.stageName));
      const latest = own[0];
      const stageState = latest && latest.stages.find((s) => s.name === stage.stageName);
      // A failed gate or a declined approval counts as a failure, whatever its status says.
      const failed = own.filter((state) => { const s = state.stages.find((x) => x.name === stage.stageName); return s && s.state !== 'aborted' && outcome(s).kind === 'bad'; }).length;
      const aborted = own.filter((state) => state.state === 'aborted').length;
      const openHere = approvals.filter((a) => a.data.stage === stage.stageName && a.data.service === serviceName);
      return h('td', { dataset: { stage: stage.stageName, service: serviceName } },
        // What runs there (a successful deployment), apart from what a sequence is bringing.
        h('div', { class: 'image' }, service.deployedImage || h('span', { class: 'muted' }, 'not deployed')),
        stageState && stageState.image && stageState.image !== service.deployedImage && !stageState.result
          ? h('div', { class: 'muted incoming-image' }, `in progress: ${stageState.image}`) : '',
        latest ? h('div', {}, outcomeBadge(stageState || latest), ' ',
          link(`/bridge/project/${enc(projectName)}/sequence/${enc(latest.shkeptncontext)}/stage/${enc(stage.stageName)}`, latest.name),
          stageState && stageState.latestEvent ? h('span', { class: 'muted' }, ` ${shortType(stageState.latestEvent.type)}`) : '') : h('div', { class: 'muted' }, 'no sequence yet'),
        stageState && stageState.latestEvaluation ? h('div', { class: 'evaluation' }, 'Evaluation ',
          link(`/bridge/project/${enc(projectName)}/evaluation/${enc(latest.shkeptncontext)}`, badge(stageState.latestEvaluation.result, `score ${stageState.latestEvaluation.score}`))) : '',
        failed || aborted ? h('div', { class: 'counters' }, failed ? h('span', { class: 'badge bad' }, `${failed} failed`) : '', aborted ? h('span', { class: 'badge idle' }, `${aborted} aborted`) : '') : '',
        openHere.map((approval) => approvalItem(approval, refresh)));
    };
    refreshed(content, fingerprint, h('div', { class: 'table-wrap' }, h('table', { class: 'environment' },
      h('caption', { class: 'sr-only' }, 'Services by stage'),
      h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Service'), stages.map((stage) => h('th', { scope: 'col' }, link(`/bridge/project/${enc(projectName)}/stage/${enc(stage.stageName)}`, stage.stageName))))),
      h('tbody', {}, services.map((serviceName) => h('tr', {}, h('th', { scope: 'row' }, serviceName), stages.map((stage) => cell(stage, serviceName))))))));
  }
  await refresh();
  context.every(3000, refresh);
}
