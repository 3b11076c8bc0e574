// Sequences: the filterable list, and one sequence's timeline of stages and tasks with every event.

import { api, contextEvents, enc, openApprovals } from '../api.js';
import { approvalItem } from './environment.js';
import { badge, busy, empty, h, link, outcomeBadge, refreshed, replace, shortType, time } from '../ui.js';
import { projectNav } from '../app.js';

export async function sequencesView(main, [projectName], context) {
  const params = new URLSearchParams(location.search);
  const filters = { service: params.get('service') || '', stage: params.get('stage') || '', state: params.get('state') || '', name: params.get('name') || '' };
  const list = h('div', { id: 'sequence-list' });
  const form = h('form', { class: 'filters', 'aria-label': 'Filter sequences', onsubmit: (event) => event.preventDefault() });
  replace(main, h('div', { class: 'heading' }, h('h1', {}, projectName, ' · Sequences')), projectNav(projectName, 'sequences'), form, list);
  const project = await api(`/controlPlane/v1/project/${enc(projectName)}`);
  const services = [...new Set((project.stages || []).flatMap((s) => (s.services || []).map((svc) => svc.serviceName)))];
  // The last list read from the API; filters apply to it at once, without asking again.
  let all = [];
  const updateUrl = () => {
    const query = new URLSearchParams(Object.entries(filters).filter(([, value]) => value));
    history.replaceState(null, '', `${location.pathname}${query.toString() ? `?${query}` : ''}`);
  };
  const select = (key, label, values) => h('label', {}, label, ' ',
    h('select', { name: key, onchange: (event) => { filters[key] = event.target.value; updateUrl(); show(); } },
      h('option', { value: '' }, 'all'), values.map((value) => h('option', { value, selected: filters[key] === value }, value))));
  replace(form,
    select('service', 'Service', services),
    select('stage', 'Stage', (project.stages || []).map((s) => s.stageName)),
    select('state', 'State', ['triggered', 'started', 'waiting', 'paused', 'finished', 'aborted', 'timedOut']),
    h('label', {}, 'Name ', h('input', { name: 'name', value: filters.name, size: 12, oninput: (event) => { filters.name = event.target.value.trim(); updateUrl(); show(); } })));

  function show() {
    const states = all.filter((state) =>
      (!filters.service || state.service === filters.service)
      && (!filters.stage || (state.stages || []).some((s) => s.name === filters.stage))
      && (!filters.state || state.state === filters.state)
      && (!filters.name || state.name.includes(filters.name)));
    const fingerprint = JSON.stringify([states, filters]);
    if (states.length === 0) {
      refreshed(list, fingerprint, empty(all.length ? 'No sequence matches these filters.' : 'No sequences have run in this project yet. Trigger one from the environment.',
        link(`/bridge/project/${enc(projectName)}`, 'Go to the environment')));
      return;
    }
    refreshed(list, fingerprint, h('div', { class: 'table-wrap' }, h('table', { class: 'list' },
      h('thead', {}, h('tr', {}, ['State', 'Sequence', 'Service', 'Stages', 'Started'].map((title) => h('th', { scope: 'col' }, title)))),
      h('tbody', {}, states.map((state) => h('tr', { dataset: { context: state.shkeptncontext } },
        h('td', {}, outcomeBadge(state)),
        h('td', {}, link(`/bridge/project/${enc(projectName)}/sequence/${enc(state.shkeptncontext)}`, state.name)),
        h('td', {}, state.service),
        h('td', {}, (state.stages || []).map((stage) => h('span', { class: 'stage-chip' }, stage.name, ' ', outcomeBadge(stage)))),
        h('td', {}, time(state.time))))))));
  }

  async function refresh() {
    const data = await api(`/controlPlane/v1/sequence/${enc(projectName)}?pageSize=100`);
    all = data.states || [];
    show();
  }
  await refresh();
  context.every(3000, refresh);
}

// Groups a context's events into stages → tasks, in the order they happened.
function timeline(events) {
  const stages = new Map();
  const byId = new Map(events.map((event) => [event.id, event]));
  for (const event of events) {
    const stage = (event.data && event.data.stage) || '—';
    if (!stages.has(stage)) stages.set(stage, { name: stage, sequence: [], tasks: new Map() });
    const entry = stages.get(stage);
    const parts = String(event.type).replace(/^sh\.keptn\.event\./, '').split('.');
    if (parts.length === 3) {
      entry.sequence.push(event);
    } else if (parts.length === 2) {
      const [task, kind] = parts;
      const key = kind === 'triggered' ? event.id : (event.triggeredid && byId.has(event.triggeredid) ? event.triggeredid : `${task}:${event.id}`);
      if (!entry.tasks.has(key)) entry.tasks.set(key, { name: task, events: [] });
      entry.tasks.get(key).events.push(event);
    }
  }
  // `get-sli` is the evaluation's own step, not a shipyard task: it goes under the evaluation it serves.
  for (const entry of stages.values()) {
    let evaluation = null;
    for (const [key, task] of [...entry.tasks]) {
      if (task.name === 'evaluation') evaluation = task;
      else if (task.name === 'get-sli' && evaluation) {
        evaluation.steps = (evaluation.steps || []).concat(task.events);
        entry.tasks.delete(key);
      }
    }
  }
  return [...stages.values()];
}

// What a user needs to see of a task without opening raw JSON: why it failed, and an evaluation's score.
function taskSummary(projectName, task, last) {
  if (!last || !last.data) return '';
  const parts = [];
  const evaluation = last.data.evaluation;
  if (task.name === 'evaluation' && evaluation && evaluation.score !== undefined) {
    parts.push(h('span', { class: 'evaluation-score' }, 'score ', link(`/bridge/project/${enc(projectName)}/evaluation/${enc(last.shkeptncontext)}`, `${Math.round(evaluation.score * 100) / 100}`)));
  }
  const failed = ['fail', 'errored'].includes(last.data.result) || ['errored', 'aborted'].includes(last.data.status);
  if (failed && last.data.message) parts.push(h('p', { class: 'failure', role: 'note' }, last.data.message));
  return parts;
}

function labelChips(trigger) {
  const labels = (trigger && trigger.data && trigger.data.labels) || {};
  const entries = Object.entries(labels).filter(([, value]) => value !== null && value !== '');
  return entries.length ? h('div', { class: 'labels' }, entries.map(([key, value]) => h('span', { class: 'chip', title: key }, `${key}: ${value}`))) : '';
}

function duration(from, to) {
  const ms = new Date(to) - new Date(from);
  if (!Number.isFinite(ms) || ms < 0) return '';
  return ms < 1000 ? `${ms} ms` : `${(ms / 1000).toFixed(1)} s`;
}

function eventDetails(event, openIds) {
  const details = h('details', { class: 'event', dataset: { event: event.id }, open: openIds.has(event.id) },
    h('summary', { dataset: { focus: `event:${event.id}` } }, shortType(event.type), h('span', { class: 'muted' }, ` ${time(event.time)} · ${event.source}`),
      // A `.triggered` event carries the previous task's result along: only a `.finished` reports one.
      event.type.endsWith('.finished') && event.data && event.data.result ? [' ', badge(event.data.result)] : ''),
    h('pre', {}, JSON.stringify(event, null, 2)));
  details.addEventListener('toggle', () => (details.open ? openIds.add(event.id) : openIds.delete(event.id)));
  return details;
}

export async function sequenceView(main, [projectName, keptnContext, focusStage], context) {
  const header = h('div', { class: 'heading' });
  const controls = h('div', { class: 'buttons', id: 'sequence-controls' });
  const status = h('div', { 'aria-live': 'polite' });
  const body = h('div', { id: 'sequence-timeline' });
  replace(main, header, projectNav(projectName, 'sequences'), controls, status, body);
  const openIds = new Set();

  const control = (state) => (event) => {
    if (state === 'abort' && !window.confirm('Abort this sequence? Its open tasks are cancelled.')) return;
    busy(event.target, status, async () => {
      await api(`/controlPlane/v1/sequence/${enc(projectName)}/${enc(keptnContext)}/control`, { method: 'POST', body: { state, stage: focusStage || '' } });
      replace(status);
      await refresh();
    });
  };

  async function refresh() {
    const [states, events, approvals] = await Promise.all([
      api(`/controlPlane/v1/sequence/${enc(projectName)}?keptnContext=${enc(keptnContext)}`).then((data) => data.states || []),
      contextEvents(projectName, keptnContext),
      openApprovals(projectName).then((list) => list.filter((a) => a.shkeptncontext === keptnContext)),
    ]);
    const state = states[0];
    const live = state && ['triggered', 'started', 'waiting', 'paused'].includes(state.state);
    refreshed(header, JSON.stringify([state && state.state, state && state.result, state && state.name]),
      // The outcome stands next to the title it qualifies.
      h('div', { class: 'title' }, h('h1', {}, state ? `${state.name} · ${state.service}` : 'Sequence'), state ? outcomeBadge(state) : ''),
      h('p', { class: 'muted' }, `Keptn context ${keptnContext}`));
    refreshed(controls, JSON.stringify([state && state.state, approvals.map((a) => a.id)]),
      live && state.state !== 'paused' ? h('button', { type: 'button', id: 'pause-button', onclick: control('pause') }, 'Pause') : '',
      live && state.state === 'paused' ? h('button', { type: 'button', id: 'resume-button', onclick: control('resume') }, 'Resume') : '',
      live ? h('button', { type: 'button', class: 'danger', id: 'abort-button', onclick: control('abort') }, 'Abort') : '',
      approvals.map((approval) => approvalItem(approval, refresh, `Approval open in ${approval.data.stage}`)));
    const fingerprint = JSON.stringify([events.length, events.length ? events[events.length - 1].id : '', state && state.stages]);
    if (events.length === 0) {
      refreshed(body, fingerprint, empty('No events for this sequence yet.'));
      return;
    }
    const stages = timeline(events).filter((stage) => !focusStage || stage.name === focusStage);
    refreshed(body, fingerprint, stages.map((stage) => {
      const stageState = state && (state.stages || []).find((s) => s.name === stage.name);
      return h('section', { class: 'stage-block', dataset: { stage: stage.name } },
        h('h2', {}, link(`/bridge/project/${enc(projectName)}/sequence/${enc(keptnContext)}/stage/${enc(stage.name)}`, stage.name), ' ', stageState ? outcomeBadge(stageState) : ''),
        // The sequence's own trigger first, with its labels; its end after the tasks.
        h('div', { class: 'sequence-events' }, stage.sequence.filter((event) => event.type.endsWith('.triggered')).map((event) => eventDetails(event, openIds))),
        labelChips(stage.sequence.find((event) => event.type.endsWith('.triggered'))),
        h('ol', { class: 'tasks' }, [...stage.tasks.values()].map((task) => {
          const triggered = task.events.find((e) => e.type.endsWith('.triggered'));
          const finished = task.events.filter((e) => e.type.endsWith('.finished'));
          const last = finished[finished.length - 1];
          return h('li', { class: 'task', dataset: { task: task.name } },
            h('div', { class: 'task-head' }, h('strong', {}, task.name), ' ',
              last ? badge(last.data.result || last.data.status) : badge('started'),
              triggered && last ? h('span', { class: 'muted' }, ` ${duration(triggered.time, last.time)}`) : '',
              ' ', taskSummary(projectName, task, last)),
            task.events.map((event) => eventDetails(event, openIds)),
            task.steps ? h('div', { class: 'task-steps' }, h('span', { class: 'muted' }, 'get-sli'), task.steps.map((event) => eventDetails(event, openIds))) : '');
        })),
        h('div', { class: 'sequence-events' }, stage.sequence.filter((event) => !event.type.endsWith('.triggered')).map((event) => eventDetails(event, openIds))),
        taskSummary(projectName, { name: 'sequence' }, stage.sequence.filter((event) => event.type.endsWith('.finished')).pop()));
    }));
  }
  await refresh();
  context.every(2000, refresh);
}
