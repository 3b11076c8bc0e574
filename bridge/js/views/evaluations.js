// Quality gates: score chart and SLI heatmap per service and stage, and one evaluation's details.

import { api, enc, sendEvent } from '../api.js';
import { badge, empty, h, link, refreshed, replace, showError, time } from '../ui.js';
import { projectNav } from '../app.js';

const SVG = 'http://www.w3.org/2000/svg';

function svg(tag, attributes = {}, ...children) {
  const element = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attributes)) element.setAttribute(key, value);
  for (const child of children) element.append(child instanceof Node ? child : document.createTextNode(String(child)));
  return element;
}

async function evaluationsOf(project, stage, service) {
  const filter = `data.project:${project} AND data.stage:${stage} AND data.service:${service}`;
  const data = await api(`/mongodb-datastore/event/type/sh.keptn.event.evaluation.finished?filter=${enc(filter)}&excludeInvalidated=true&limit=50`);
  return (data.events || []).reverse();
}

/// Bars shown at most: older evaluations scroll out so labels stay readable.
const CHART_BARS = 30;

// The link to one evaluation: its context and its stage (a context may evaluate several stages).
function evaluationHref(project, event) {
  const stage = event.data && event.data.stage;
  return `/bridge/project/${enc(project)}/evaluation/${enc(event.shkeptncontext)}${stage ? `?stage=${enc(stage)}` : ''}`;
}

// SLI values as people read them: integers as they are, others to at most three significant decimals.
export function rounded(value) {
  const number = Number(value);
  if (!Number.isFinite(number)) return String(value);
  if (Number.isInteger(number)) return String(number);
  const magnitude = Math.abs(number);
  const decimals = magnitude >= 100 ? 0 : magnitude >= 1 ? 2 : 3;
  return String(Number(number.toFixed(decimals)));
}

// The SLO's total_score thresholds (`pass: "90%"`, `warning: "75%"`), read from the evaluation's SLO file.
function thresholds(event) {
  const content = event && event.data && event.data.evaluation && event.data.evaluation.sloFileContent;
  if (!content) return {};
  let text = '';
  try {
    text = decodeURIComponent(escape(atob(content)));
  } catch {
    return {};
  }
  const section = (text.split(/^total_score:/m)[1] || '').split(/^\S/m)[0];
  const value = (key) => {
    const match = section.match(new RegExp(`\\b${key}:\\s*["']?(\\d+(?:\\.\\d+)?)`));
    return match ? Number(match[1]) : undefined;
  };
  return { pass: value('pass'), warning: value('warning') };
}

// A column's label: when, and what was evaluated (build label or image).
function columnLabel(event) {
  const labels = (event.data && event.data.labels) || {};
  const image = event.data && event.data.configurationChange && event.data.configurationChange.values && event.data.configurationChange.values.image;
  const what = labels.buildId || labels.buildid || labels.version || (image ? String(image).split('/').pop() : '');
  const when = new Date(event.time);
  const date = Number.isNaN(when.getTime()) ? '' : when.toLocaleString([], { month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit' });
  return [date, what ? h('div', { class: 'muted' }, what) : ''];
}

// Scores over time as bars coloured by result; each bar links to its evaluation.
function scoreChart(all, project) {
  const evaluations = all.slice(-CHART_BARS);
  const width = Math.max(320, evaluations.length * 36 + 40);
  const height = 160;
  // Drawn at its natural size (shrunk to fit narrow screens, never blown up).
  const chart = svg('svg', { viewBox: `0 0 ${width} ${height + 30}`, width, height: height + 30, class: 'chart', role: 'group', 'aria-label': `Scores of the last ${evaluations.length} evaluations` });
  chart.append(svg('line', { x1: 30, y1: height, x2: width, y2: height, class: 'axis' }));
  for (const mark of [0, 50, 100]) {
    const y = height - (mark / 100) * (height - 10);
    chart.append(svg('text', { x: 0, y: y + 4, class: 'tick' }, String(mark)));
  }
  // The thresholds of the newest evaluation's SLO, as dashed lines.
  const limits = thresholds(evaluations[evaluations.length - 1]);
  for (const [kind, value] of Object.entries(limits)) {
    if (value === undefined) continue;
    const y = height - (Math.min(value, 100) / 100) * (height - 10);
    chart.append(svg('line', { x1: 30, y1: y, x2: width, y2: y, class: `threshold ${kind}` }, svg('title', {}, `${kind} from ${value}%`)));
    chart.append(svg('text', { x: width - 4, y: y - 3, class: `tick threshold-label ${kind}`, 'text-anchor': 'end' }, `${kind} ${value}%`));
  }
  evaluations.forEach((event, index) => {
    const score = Number(event.data.evaluation && event.data.evaluation.score) || 0;
    const barHeight = (score / 100) * (height - 10);
    const x = 36 + index * 36;
    const tip = `${time(event.time)}: ${event.data.result}, score ${rounded(score)}`;
    const anchor = svg('a', { href: evaluationHref(project, event), 'data-link': '', 'aria-label': tip },
      svg('rect', { x, y: height - barHeight, width: 24, height: Math.max(barHeight, 1), class: `bar ${event.data.result}` },
        svg('title', {}, tip)),
      svg('text', { x: x + 12, y: height + 14, class: 'tick', 'text-anchor': 'middle' }, String(Math.round(score))));
    chart.append(anchor);
  });
  return chart;
}

function heatmap(evaluations, project) {
  const slis = [...new Set(evaluations.flatMap((event) => ((event.data.evaluation || {}).indicatorResults || []).map((r) => r.value && r.value.metric).filter(Boolean)))];
  if (slis.length === 0) return h('p', { class: 'muted' }, 'These evaluations have no SLI results (no SLO file, or no SLI provider).');
  // Scrolls in its own box; shown scrolled to the newest (rightmost) column.
  const box = h('div', { class: 'heatmap-box', tabindex: '0', 'aria-label': 'SLI heatmap, newest on the right' });
  requestAnimationFrame(() => { box.scrollLeft = box.scrollWidth; });
  box.append(h('table', { class: 'heatmap' },
    h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'SLI'), evaluations.map((event) =>
      h('th', { scope: 'col', dataset: { context: event.shkeptncontext } }, link(evaluationHref(project, event), ...columnLabel(event)))))),
    h('tbody', {}, slis.map((sli) => h('tr', {}, h('th', { scope: 'row' }, sli), evaluations.map((event) => {
      const result = ((event.data.evaluation || {}).indicatorResults || []).find((r) => r.value && r.value.metric === sli);
      return result
        ? h('td', { class: `cell ${result.status}`, title: `${result.value.value} (${result.status})` }, rounded(result.value.value), h('span', { class: 'sr-only' }, ` ${result.status}`))
        : h('td', { class: 'muted' }, '—');
    }))))));
  return box;
}

export async function evaluationsView(main, [projectName], context) {
  const project = await api(`/controlPlane/v1/project/${enc(projectName)}`);
  const stages = (project.stages || []).map((s) => s.stageName);
  const services = [...new Set((project.stages || []).flatMap((s) => (s.services || []).map((svc) => svc.serviceName)))];
  const params = new URLSearchParams(location.search);
  const chosen = { stage: params.get('stage') || stages[0], service: params.get('service') || services[0] };
  const content = h('div', { id: 'evaluations' });
  const picker = (key, label, values) => h('label', {}, label, ' ', h('select', { name: key, onchange: (event) => {
    chosen[key] = event.target.value;
    history.replaceState(null, '', `${location.pathname}?stage=${enc(chosen.stage)}&service=${enc(chosen.service)}`);
    show().catch((error) => showError(error, content));
  } }, values.map((value) => h('option', { value, selected: chosen[key] === value }, value))));
  replace(main, h('div', { class: 'heading' }, h('h1', {}, projectName, ' · Evaluations')), projectNav(projectName, 'evaluations'),
    services.length ? h('form', { class: 'filters' }, picker('service', 'Service', services), picker('stage', 'Stage', stages)) : '', content);
  async function show() {
    if (!services.length) {
      replace(content, empty('No services yet: evaluations are made per service and stage.'));
      return;
    }
    const evaluations = await evaluationsOf(projectName, chosen.stage, chosen.service);
    const fingerprint = JSON.stringify([chosen, evaluations.map((event) => event.id)]);
    if (evaluations.length === 0) {
      refreshed(content, fingerprint, empty(`No evaluations of ${chosen.service} in ${chosen.stage} yet. Trigger one, or add an evaluation task to a sequence.`));
      return;
    }
    refreshed(content, fingerprint, h('h2', {}, 'Scores'), scoreChart(evaluations, projectName), h('h2', {}, 'SLIs'), heatmap(evaluations, projectName));
  }
  await show();
  context.every(5000, show);
}

function targets(list) {
  return (list || []).map((target) => h('div', { class: target.violated ? 'violated' : 'met' }, `${target.criteria} (${target.targetValue})`, target.violated ? ' ✗' : ' ✓'));
}

export async function evaluationView(main, [projectName, keptnContext], context) {
  // A context may evaluate several stages: `?stage=` names which.
  const stage = new URLSearchParams(location.search).get('stage');
  const find = async () => {
    const data = await api(`/mongodb-datastore/event?project=${enc(projectName)}&keptnContext=${enc(keptnContext)}&type=sh.keptn.event.evaluation.finished${stage ? `&stage=${enc(stage)}` : ''}&pageSize=10`);
    return (data.events || [])[0];
  };
  const finished = await find();
  if (!finished) {
    replace(main, h('div', { class: 'heading' }, h('h1', {}, 'Evaluation')), projectNav(projectName, 'evaluations'),
      empty('This evaluation has not finished yet (or there is none in this context); this page updates when it does.', link(`/bridge/project/${enc(projectName)}/sequence/${enc(keptnContext)}`, 'See the sequence')));
    // Shown as soon as it finishes.
    let shown = false;
    context.every(2000, async () => {
      if (shown || !(await find())) return;
      shown = true;
      await evaluationView(main, [projectName, keptnContext], context);
    });
    return;
  }
  const evaluation = finished.data.evaluation || {};
  const results = evaluation.indicatorResults || [];
  let slo = '';
  try {
    slo = evaluation.sloFileContent ? decodeURIComponent(escape(atob(evaluation.sloFileContent))) : '';
  } catch {
    slo = '';
  }
  const status = h('div', { 'aria-live': 'polite' });
  const invalidate = h('button', { type: 'button', class: 'danger', id: 'invalidate-button', onclick: async () => {
    invalidate.disabled = true;
    try {
      await sendEvent({ type: 'sh.keptn.event.evaluation.invalidated', shkeptncontext: finished.shkeptncontext, triggeredid: finished.triggeredid,
        data: { project: finished.data.project, stage: finished.data.stage, service: finished.data.service } });
      replace(status, h('p', { class: 'ok-text' }, 'Invalidated: later evaluations no longer compare with this one.'));
    } catch (error) {
      showError(error, status);
      invalidate.disabled = false;
    }
  } }, 'Invalidate');
  const history = await evaluationsOf(projectName, finished.data.stage, finished.data.service).catch(() => []);
  replace(main,
    h('div', { class: 'heading' }, h('h1', {}, `Evaluation of ${finished.data.service} in ${finished.data.stage}`), invalidate),
    projectNav(projectName, 'evaluations'),
    h('p', {}, badge(finished.data.result), ` score ${evaluation.score ?? 0} · ${time(evaluation.timeStart)} – ${time(evaluation.timeEnd)} · `,
      link(`/bridge/project/${enc(projectName)}/sequence/${enc(keptnContext)}`, 'sequence')),
    finished.data.message ? h('p', { class: 'message' }, finished.data.message) : '',
    status,
    results.length ? h('div', { class: 'table-wrap' }, h('table', { class: 'list', id: 'sli-results' },
      h('thead', {}, h('tr', {}, ['SLI', 'Value', 'Compared with', 'Pass criteria', 'Warning criteria', 'Score', 'Result'].map((title) => h('th', { scope: 'col' }, title)))),
      h('tbody', {}, results.map((result) => h('tr', { dataset: { sli: result.value ? result.value.metric : '' } },
        h('th', { scope: 'row' }, result.displayName || (result.value && result.value.metric) || '', result.keySli ? h('span', { class: 'badge warn' }, 'key') : ''),
        h('td', {}, result.value ? rounded(result.value.value) : '—', result.value && result.value.message ? h('div', { class: 'muted' }, result.value.message) : ''),
        h('td', {}, result.value ? String(result.value.comparedValue ?? '') : ''),
        h('td', {}, targets(result.passTargets)),
        h('td', {}, targets(result.warningTargets)),
        h('td', {}, String(result.score)),
        h('td', {}, badge(result.status))))))) : empty('No SLI results in this evaluation.'),
    history.length > 1 ? [h('h2', {}, 'Scores of this service and stage'), scoreChart(history, projectName)] : '',
    slo ? h('details', {}, h('summary', {}, 'SLO file'), h('pre', {}, slo)) : '',
    h('details', {}, h('summary', {}, 'Raw event'), h('pre', {}, JSON.stringify(finished, null, 2))));
}
