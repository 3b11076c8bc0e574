// The trigger dialog: a delivery (image), an evaluation (timeframe) or any sequence.

import { api, enc, sendEvent } from '../api.js';
import { dialog, h, replace, showError } from '../ui.js';
import { navigate } from '../app.js';

function labelsOf(text) {
  const labels = {};
  for (const pair of text.split(',').map((item) => item.trim()).filter(Boolean)) {
    const [key, ...rest] = pair.split('=');
    if (key) labels[key.trim()] = rest.join('=').trim();
  }
  return labels;
}

// The sequences of each stage of a shipyard in block style (the usual form): stage → names. A shipyard
// this reading does not understand yields nothing, and the field stays free text.
export function shipyardSequences(text) {
  const byStage = new Map();
  let stage = null;
  let stageIndent = -1;
  let sequenceIndent = -1;
  let inSequences = false;
  for (const line of String(text || '').split('\n')) {
    const item = line.match(/^(\s*)- name:\s*["']?([^"'#\s]+)/);
    if (item) {
      const indent = item[1].length;
      if (stageIndent < 0 || indent === stageIndent) {
        [stage, stageIndent, inSequences, sequenceIndent] = [item[2], indent, false, -1];
        byStage.set(stage, []);
      } else if (inSequences && indent > stageIndent && (sequenceIndent < 0 || indent === sequenceIndent)) {
        sequenceIndent = indent;
        byStage.get(stage).push(item[2]);
      }
      continue;
    }
    const key = line.match(/^(\s*)(\w+):/);
    if (key && stage && key[1].length > stageIndent && key[1].length <= stageIndent + 2) inSequences = key[2] === 'sequences';
  }
  return byStage;
}

export function openTriggerDialog(project, { stage, service } = {}) {
  const stages = project.stages || [];
  const services = [...new Set(stages.flatMap((s) => (s.services || []).map((svc) => svc.serviceName)))];
  if (services.length === 0) {
    showError(new Error('Create a service first: sequences run for a service.'));
    return;
  }
  const select = (id, values, chosen) => h('select', { id, name: id }, values.map((value) => h('option', { value, selected: value === chosen }, value)));
  const kind = select('trigger-kind', ['delivery', 'evaluation', 'sequence'], 'delivery');
  const serviceSelect = select('trigger-service', services, service || services[0]);
  const stageSelect = select('trigger-stage', stages.map((s) => s.stageName), stage || (stages[0] && stages[0].stageName));
  const image = h('input', { id: 'trigger-image', name: 'image', placeholder: 'docker.io/org/app:1.2.3' });
  const known = shipyardSequences(project.shipyard);
  const sequenceList = h('datalist', { id: 'trigger-sequences' });
  const offer = () => replace(sequenceList, (known.get(stageSelect.value) || []).map((name) => h('option', { value: name })));
  stageSelect.addEventListener('change', offer);
  offer();
  const sequence = h('input', { id: 'trigger-sequence', name: 'sequence', value: 'delivery', list: 'trigger-sequences', autocomplete: 'off' });
  const timeframe = h('input', { id: 'trigger-timeframe', name: 'timeframe', value: '5m' });
  const labels = h('input', { id: 'trigger-labels', name: 'labels', placeholder: 'key=value,other=value' });
  const status = h('div', { 'aria-live': 'polite' });
  const deliveryFields = h('div', {}, h('label', { for: 'trigger-image' }, 'Image'), image);
  const sequenceFields = h('div', {}, h('label', { for: 'trigger-sequence' }, 'Sequence'), sequence, sequenceList);
  const evaluationFields = h('div', {}, h('label', { for: 'trigger-timeframe' }, 'Timeframe (e.g. 5m, 1h)'), timeframe);
  const showFields = () => {
    deliveryFields.hidden = kind.value !== 'delivery';
    sequenceFields.hidden = kind.value === 'evaluation';
    evaluationFields.hidden = kind.value !== 'evaluation';
  };
  kind.addEventListener('change', showFields);
  const run = h('button', { type: 'button', class: 'primary', id: 'trigger-submit' }, 'Trigger');
  const form = h('form', { id: 'trigger-form', onsubmit: (event) => { event.preventDefault(); run.click(); } },
    h('label', { for: 'trigger-kind' }, 'What to run'), kind,
    h('label', { for: 'trigger-service' }, 'Service'), serviceSelect,
    h('label', { for: 'trigger-stage' }, 'Stage'), stageSelect,
    deliveryFields, sequenceFields, evaluationFields,
    h('label', { for: 'trigger-labels' }, 'Labels'), labels,
    status);
  showFields();
  const cancel = h('button', { type: 'button' }, 'Cancel');
  const box = dialog('Trigger a sequence', form, [cancel, run]);
  cancel.addEventListener('click', () => box.close());
  run.addEventListener('click', async () => {
    const target = { project: project.projectName, stage: stageSelect.value, service: serviceSelect.value, labels: labelsOf(labels.value) };
    run.disabled = true;
    try {
      let context;
      if (kind.value === 'evaluation') {
        const answer = await api(`/controlPlane/v1/project/${enc(target.project)}/stage/${enc(target.stage)}/service/${enc(target.service)}/evaluation`, {
          method: 'POST', body: { timeframe: timeframe.value.trim(), labels: target.labels },
        });
        context = answer.keptnContext;
      } else {
        if (kind.value === 'delivery' && !image.value.trim()) throw new Error('Give the image to deliver, e.g. docker.io/org/app:1.2.3');
        const name = sequence.value.trim() || 'delivery';
        const data = { ...target };
        if (kind.value === 'delivery') data.configurationChange = { values: { image: image.value.trim() } };
        context = await sendEvent({ type: `sh.keptn.event.${target.stage}.${name}.triggered`, data });
      }
      box.close();
      navigate(`/project/${enc(target.project)}/sequence/${enc(context)}`);
    } catch (error) {
      showError(error, status);
    } finally {
      run.disabled = false;
    }
  });
  kind.focus();
}
