// Sequences: the filterable list, and one sequence's timeline of stages and tasks with every event.

import { api, contextEvents, decideApproval, enc, openApprovals } from '../api.js';
import { badge, empty, h, link, replace, showError, shortType, time } from '../ui.js';
import { projectNav } from '../app.js';

export async function sequencesView(main, [projectName], context) {
  const params = new URLSearchParams(location.search);
  const filters = { service: params.get('service') || '', stage: params.get('stage') || '', state: params.get('state') || '', name: params.get('name') || '' };
  const list = h('div', { id: 'sequence-list' });
  const form = h('form', { class: 'filters', 'aria-label': 'Filter sequences' });
  replace(main, h('div', { class: 'heading' }, h('h1', {}, projectName, ' · Sequences')), projectNav(projectName, 'sequences'), form, list);
  const project = await api(`/controlPlane/v1/project/${enc(projectName)}`);
  const services = [...new Set((project.stages || []).flatMap((s) => (s.services || []).map((svc) => svc.serviceName)))];
  const select = (key, label, values) => h('label', {}, label, ' ',
    h('select', { name: key, onchange: (event) => { filters[key] = event.target.value; updateUrl(); refresh(); } },
      h('option', { value: '' }, 'all'), values.map((value) => h('option', { value, selected: filters[key] === value }, value))));
  const updateUrl = () => {
    const query = new URLSearchParams(Object.entries(filters).filter(([, value]) => value));
    history.replaceState(null, '', `${location.pathname}${query.toString() ? `?${query}` : ''}`);
  };
  replace(form,
    select('service', 'Service', services),
    select('stage', 'Stage', (project.stages || []).map((s) => s.stageName)),
    select('state', 'State', ['triggered', 'started', 'waiting', 'paused', 'finished', 'aborted', 'timedOut']),
    h('label', {}, 'Name ', h('input', { name: 'name', value: filters.name, size: 12, oninput: (event) => { filters.name = event.target.value.trim(); updateUrl(); refresh(); } })));

  async function refresh() {
    const data = await api(`/controlPlane/v1/sequence/${enc(projectName)}?pageSize=100`);
    const states = (data.states || []).filter((state) =>
      (!filters.service || state.service === filters.service)
      && (!filters.stage || (state.stages || []).some((s) => s.name === filters.stage))
      && (!filters.state || state.state === filters.state)
      && (!filters.name || state.name.includes(filters.name)));
    if (states.length === 0) {
      replace(list, empty(data.states && data.states.length ? 'No sequence matches these filters.' : 'No sequences have run in this project yet. Trigger one from the environment.',
        link(`/bridge/project/${enc(projectName)}`, 'Go to the environment')));
      return;
    }
    replace(list, h('table', { class: 'list' },
      h('thead', {}, h('tr', {}, ['State', 'Sequence', 'Service', 'Stages', 'Started'].map((title) => h('th', { scope: 'col' }, title)))),
      h('tbody', {}, states.map((state) => h('tr', { dataset: { context: state.shkeptncontext } },
        h('td', {}, badge(state.state)),
        h('td', {}, link(`/bridge/project/${enc(projectName)}/sequence/${enc(state.shkeptncontext)}`, state.name)),
        h('td', {}, state.service),
        h('td', {}, (state.stages || []).map((stage) => h('span', { class: 'stage-chip' }, stage.name, ' ', badge(stage.state)))),
        h('td', {}, time(state.time)))))));
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
  return [...stages.values()];
}

function duration(from, to) {
  const ms = new Date(to) - new Date(from);
  if (!Number.isFinite(ms) || ms < 0) return '';
  return ms < 1000 ? `${ms} ms` : `${(ms / 1000).toFixed(1)} s`;
}

function eventDetails(event, openIds) {
  const details = h('details', { class: 'event', dataset: { event: event.id }, open: openIds.has(event.id) },
    h('summary', {}, shortType(event.type), h('span', { class: 'muted' }, ` ${time(event.time)} · ${event.source}`),
      event.data && event.data.result ? [' ', badge(event.data.result)] : ''),
    h('pre', {}, JSON.stringify(event, null, 2)));
  details.addEventListener('toggle', () => (details.open ? openIds.add(event.id) : openIds.delete(event.id)));
  return details;
}

export async function sequenceView(main, [projectName, keptnContext, focusStage], context) {
  const header = h('div', { class: 'heading' });
  const controls = h('div', { class: 'buttons', id: 'sequence-controls' });
  const body = h('div', { id: 'sequence-timeline', 'aria-live': 'polite' });
  replace(main, header, projectNav(projectName, 'sequences'), controls, body);
  const openIds = new Set();
  let shown = '';

  const control = (state) => async () => {
    try {
      await api(`/controlPlane/v1/sequence/${enc(projectName)}/${enc(keptnContext)}/control`, { method: 'POST', body: { state, stage: focusStage || '' } });
      await refresh();
    } catch (error) {
      showError(error);
    }
  };

  async function refresh() {
    const [states, events, approvals] = await Promise.all([
      api(`/controlPlane/v1/sequence/${enc(projectName)}?keptnContext=${enc(keptnContext)}`).then((data) => data.states || []),
      contextEvents(projectName, keptnContext),
      openApprovals(projectName).then((list) => list.filter((a) => a.shkeptncontext === keptnContext)),
    ]);
    const state = states[0];
    replace(header, h('h1', {}, state ? `${state.name} · ${state.service}` : 'Sequence'), state ? badge(state.state) : '',
      h('p', { class: 'muted' }, `Keptn context ${keptnContext}`));
    const live = state && ['triggered', 'started', 'waiting', 'paused'].includes(state.state);
    replace(controls,
      live && state.state !== 'paused' ? h('button', { type: 'button', id: 'pause-button', onclick: control('pause') }, 'Pause') : '',
      live && state.state === 'paused' ? h('button', { type: 'button', id: 'resume-button', onclick: control('resume') }, 'Resume') : '',
      live ? h('button', { type: 'button', class: 'danger', id: 'abort-button', onclick: control('abort') }, 'Abort') : '',
      approvals.map((approval) => h('span', { class: 'approval', dataset: { approval: approval.id } },
        `Approval open in ${approval.data.stage}: `,
        h('button', { type: 'button', class: 'primary small', onclick: async (event) => { event.target.disabled = true; try { await decideApproval(approval, true); await refresh(); } catch (error) { showError(error); } } }, 'Approve'),
        h('button', { type: 'button', class: 'small', onclick: async (event) => { event.target.disabled = true; try { await decideApproval(approval, false); await refresh(); } catch (error) { showError(error); } } }, 'Decline'))));
    const fingerprint = `${events.length}:${events.length ? events[events.length - 1].id : ''}`;
    if (fingerprint === shown) return;
    shown = fingerprint;
    if (events.length === 0) {
      replace(body, empty('No events for this sequence yet.'));
      return;
    }
    const stages = timeline(events).filter((stage) => !focusStage || stage.name === focusStage);
    replace(body, stages.map((stage) => {
      const stageState = state && (state.stages || []).find((s) => s.name === stage.name);
      return h('section', { class: 'stage-block', dataset: { stage: stage.name } },
        h('h2', {}, link(`/bridge/project/${enc(projectName)}/sequence/${enc(keptnContext)}/stage/${enc(stage.name)}`, stage.name), ' ', stageState ? badge(stageState.state) : ''),
        h('ol', { class: 'tasks' }, [...stage.tasks.values()].map((task) => {
          const triggered = task.events.find((e) => e.type.endsWith('.triggered'));
          const finished = task.events.filter((e) => e.type.endsWith('.finished'));
          const last = finished[finished.length - 1];
          return h('li', { class: 'task', dataset: { task: task.name } },
            h('div', { class: 'task-head' }, h('strong', {}, task.name), ' ',
              last ? badge(last.data.result || last.data.status) : badge('started'),
              triggered && last ? h('span', { class: 'muted' }, ` ${duration(triggered.time, last.time)}`) : ''),
            task.events.map((event) => eventDetails(event, openIds)));
        })),
        h('div', { class: 'sequence-events' }, stage.sequence.map((event) => eventDetails(event, openIds))));
    }));
  }
  await refresh();
  context.every(2000, refresh);
}
