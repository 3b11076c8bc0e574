// The Bridge end to end in Debian's headless Chromium, driven by playwright-core.
//
// Run by tests/bridge.rs against a running Keelson (BASE, TOKEN), whose test executor answers
// `deployment` tasks of the service carts after a short delay and never those of orders, and whose
// SLI provider answers get-sli. Screenshots of the main screens go to OUT.

import { launchChromium } from './chromium.mjs';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';

const { BASE, TOKEN, OUT } = process.env;
if (!BASE || !TOKEN || !OUT) throw new Error('BASE, TOKEN and OUT must be set');
mkdirSync(OUT, { recursive: true });

const SLO = `spec_version: "1.0"
comparison: {compare_with: single_result, include_result_with_score: pass, aggregate_function: avg}
objectives:
  - sli: response_time_p95
    displayName: Response time P95
    pass: [{criteria: ["<600"]}]
    warning: [{criteria: ["<=800"]}]
  - sli: error_rate
    key_sli: true
    pass: [{criteria: ["<=1"]}]
total_score: {pass: "90%", warning: "50%"}
`;

function check(condition, message) {
  if (!condition) throw new Error(`check failed: ${message}`);
}

async function apiCall(path, method = 'GET', body) {
  const response = await fetch(`${BASE}/api${path}`, {
    method, headers: { 'x-token': TOKEN, 'content-type': 'application/json' }, body: body && JSON.stringify(body),
  });
  const text = await response.text();
  if (!response.ok) throw new Error(`${method} ${path}: ${response.status} ${text}`);
  return text ? JSON.parse(text) : null;
}

const browser = await launchChromium();
const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
const consoleErrors = [];
page.on('console', (message) => { if (message.type() === 'error') consoleErrors.push(message.text()); });
page.on('pageerror', (error) => consoleErrors.push(error.message));
const shot = (name) => page.screenshot({ path: join(OUT, `${name}.png`), fullPage: true });
const step = (name) => console.log(`step: ${name}`);

try {
  step('log in');
  await page.goto(`${BASE}/`);
  await page.waitForURL(/\/bridge\/login/);
  await page.locator('#token').waitFor();
  await shot('01-login');
  await page.fill('#token', 'not-the-token');
  await page.keyboard.press('Enter');
  await page.getByText('This API token is not valid.').waitFor();
  await page.fill('#token', TOKEN);
  await page.getByRole('button', { name: 'Log in' }).click();
  await page.getByText('There are no projects yet').waitFor();
  await shot('02-dashboard-empty');
  // The refused token was logged by the browser as a failed request; nothing else may be.
  consoleErrors.length = 0;

  step('create a project in the dialog (keyboard)');
  await page.locator('#create-project-button').focus();
  await page.keyboard.press('Enter');
  await page.locator('dialog #project-name').waitFor();
  await page.fill('#project-name', 'sockshop');
  await page.click('#create-project-submit');
  await page.waitForURL(/\/bridge\/project\/sockshop$/);
  await page.getByText('This project has no services yet').waitFor();
  for (const service of ['carts', 'orders']) {
    await page.click('#create-service-button');
    await page.fill('#service-name', service);
    // Enter in the one-field form creates the service (and does not reload the page).
    await page.keyboard.press('Enter');
    await page.locator(`th:text-is("${service}")`).waitFor();
  }
  // What the quality gate needs: an SLO and the SLI provider.
  await apiCall('/resource-service/v1/project/sockshop/stage/dev/service/carts/resource', 'POST',
    { resources: [{ resourceURI: 'slo.yaml', resourceContent: Buffer.from(SLO).toString('base64') }] });
  await apiCall('/v1/event', 'POST', { type: 'sh.keptn.event.monitoring.configure', source: 'e2e', data: { project: 'sockshop', service: 'carts', type: 'test-provider' } });
  await shot('03-environment');

  step('trigger a delivery and watch it live');
  await page.click('#trigger-button');
  await page.selectOption('#trigger-service', 'carts');
  await page.fill('#trigger-image', 'docker.io/keptn/carts:0.13.1');
  await page.click('#trigger-submit');
  await page.waitForURL(/\/bridge\/project\/sockshop\/sequence\/[0-9a-f-]+$/);
  const deliveryUrl = page.url();
  const timeline = page.locator('#sequence-timeline');
  await timeline.locator('summary', { hasText: 'deployment.triggered' }).first().waitFor();
  // The executor answers after a delay: the finished event appears without a reload.
  await timeline.locator('summary', { hasText: 'deployment.finished' }).first().waitFor({ timeout: 20000 });
  await timeline.locator('summary', { hasText: 'evaluation.finished' }).first().waitFor({ timeout: 20000 });
  check(page.url() === deliveryUrl, 'no navigation happened while watching');

  step('approve the manual approval');
  const approve = page.locator('#sequence-controls button', { hasText: 'Approve' });
  await approve.waitFor({ timeout: 20000 });
  await shot('04-sequence-approval');
  // Live updates keep the keyboard focus where it is.
  await approve.focus();
  await page.waitForTimeout(4500);
  check(await page.evaluate(() => document.activeElement && document.activeElement.textContent === 'Approve'), 'focus stays on Approve across live updates');
  await page.keyboard.press('Enter');
  await page.locator('h1 + .badge[data-outcome="ok"]', { hasText: 'succeeded' }).waitFor({ timeout: 30000 });
  await page.locator('section[data-stage="production"] summary', { hasText: 'approval.finished' }).first().waitFor();
  // A raw event payload opens in place.
  await page.locator('section[data-stage="dev"] summary', { hasText: 'deployment.finished' }).first().click();
  await page.locator('section[data-stage="dev"] details[open] pre').first().waitFor();
  await shot('05-sequence-finished');
  // Only shipyard tasks are numbered: get-sli sits under its evaluation, whose score links to it; the
  // sequence's own trigger comes first.
  const dev = page.locator('section[data-stage="dev"]');
  check(await dev.locator('li.task[data-task="get-sli"]').count() === 0, 'get-sli is not a numbered task');
  check(await dev.locator('li.task[data-task="evaluation"] .task-steps summary', { hasText: 'get-sli.finished' }).count() === 1, 'get-sli is shown under the evaluation');
  await dev.locator('li.task[data-task="evaluation"] .evaluation-score a').waitFor();
  check((await dev.locator('details.event summary').first().innerText()).startsWith('dev.delivery.triggered'), 'the trigger comes first');
  check(await page.locator('details.event summary', { hasText: 'approval.triggered' }).locator('.badge').count() === 0, 'a .triggered event shows no result');

  step('open the evaluation with its SLIs');
  await page.goto(`${BASE}/bridge/project/sockshop/evaluation`);
  await page.locator('svg.chart rect.bar').first().waitFor();
  await page.locator('table.heatmap th', { hasText: 'response_time_p95' }).waitFor();
  await shot('06-evaluations');
  check(await page.locator('svg.chart line.threshold.pass').count() === 1, 'the chart shows the pass threshold');
  check(await page.locator('svg.chart line.threshold.warning').count() === 1, 'the chart shows the warning threshold');
  const box = await page.locator('.heatmap-box').evaluate((element) => ({ overflow: getComputedStyle(element).overflowX, width: element.clientWidth, page: document.documentElement.clientWidth }));
  check(box.overflow === 'auto' && box.width <= box.page, 'the heatmap scrolls in its own box inside the page');
  const column = page.locator('table.heatmap thead th a').first();
  check((await column.getAttribute('href')).includes('?stage=dev'), 'a heatmap column opens the evaluation of its stage');
  await column.click();
  await page.waitForURL(/\/evaluation\/[0-9a-f-]+\?stage=dev$/);
  await page.locator('h1', { hasText: 'Evaluation of carts in dev' }).waitFor();
  await page.goBack();
  await page.locator('svg.chart rect.bar').first().waitFor();
  await page.locator('svg.chart a').first().click();
  await page.waitForURL(/\/bridge\/project\/sockshop\/evaluation\/[0-9a-f-]+\?stage=dev$/);
  const sliRow = page.locator('#sli-results tr[data-sli="response_time_p95"]');
  await sliRow.waitFor();
  check((await sliRow.innerText()).includes('350'), 'the SLI value is shown');
  await shot('07-evaluation');

  step('abort a running sequence');
  await page.goto(`${BASE}/bridge/project/sockshop`);
  await page.click('#trigger-button');
  await page.selectOption('#trigger-service', 'orders');
  await page.fill('#trigger-image', 'docker.io/keptn/orders:1.0.0');
  await page.click('#trigger-submit');
  await page.waitForURL(/\/sequence\/[0-9a-f-]+$/);
  await page.locator('#abort-button').waitFor({ timeout: 20000 });
  // Aborting asks first.
  let asked = '';
  page.once('dialog', (question) => { asked = question.message(); question.accept(); });
  await page.click('#abort-button');
  check(asked.includes('Abort this sequence'), 'the abort is confirmed first');
  await page.locator('h1 + .badge', { hasText: 'aborted' }).waitFor({ timeout: 20000 });

  step('the trigger dialog offers the shipyard\'s sequences of the chosen stage');
  await page.goto(`${BASE}/bridge/project/sockshop`);
  await page.click('#trigger-button');
  await page.selectOption('#trigger-kind', 'sequence');
  await page.selectOption('#trigger-stage', 'production');
  const offered = await page.locator('#trigger-sequences option').evaluateAll((options) => options.map((o) => o.value));
  check(offered.length === 1 && offered[0] === 'delivery', `production offers its delivery sequence (${offered})`);
  await page.keyboard.press('Escape');

  step('a declined approval is a failure, in red, and deploys nothing; the dashboard follows live');
  await page.goto(`${BASE}/bridge/`);
  const tile = page.locator('article[data-project="sockshop"]');
  await tile.locator('ul.plain li a').first().waitFor();
  const before = await tile.locator('ul.plain li a').first().getAttribute('href');
  const triggered = await apiCall('/v1/event', 'POST', { type: 'sh.keptn.event.dev.delivery.triggered', source: 'e2e',
    data: { project: 'sockshop', stage: 'dev', service: 'carts', configurationChange: { values: { image: 'docker.io/keptn/carts:0.13.2' } } } });
  // The new sequence shows up on the dashboard without a reload.
  await tile.locator(`li a[href$="${triggered.keptnContext}"]`).waitFor({ timeout: 15000 });
  check(before !== `/bridge/project/sockshop/sequence/${triggered.keptnContext}`, 'it was not there before');
  await tile.locator(`li a[href$="${triggered.keptnContext}"]`).click();
  await page.waitForURL(/\/sequence\/[0-9a-f-]+$/);
  const sequenceUrl = page.url();
  const decline = page.locator('#sequence-controls button', { hasText: 'Decline' });
  await decline.waitFor({ timeout: 30000 });
  // While the approval waits, production still runs the approved image; the new one is only in progress.
  await page.goto(`${BASE}/bridge/project/sockshop`);
  const waiting = page.locator('td[data-stage="production"][data-service="carts"]');
  await waiting.locator('.image', { hasText: 'carts:0.13.1' }).waitFor();
  await waiting.locator('.incoming-image', { hasText: 'in progress: docker.io/keptn/carts:0.13.2' }).waitFor();
  await page.goto(sequenceUrl);
  await decline.waitFor();
  await decline.click();
  const failedBadge = page.locator('h1 + .badge', { hasText: 'failed' });
  await failedBadge.waitFor({ timeout: 30000 });
  check(await failedBadge.getAttribute('data-outcome') === 'bad', 'a declined approval is shown red');
  check(await page.locator('section[data-stage="production"] h2 .badge[data-outcome="bad"]').count() === 1, 'the production stage is red');
  await shot('05b-sequence-declined');
  await page.goto(`${BASE}/bridge/`);
  await page.locator('article[data-project="sockshop"] .badge[data-outcome="bad"]', { hasText: 'failed' }).first().waitFor();
  await page.goto(`${BASE}/bridge/project/sockshop`);
  const production = page.locator('td[data-stage="production"][data-service="carts"]');
  await production.locator('.image', { hasText: 'carts:0.13.1' }).waitFor();
  check(!(await production.locator('.image').innerText()).includes('0.13.2'), 'the declined image is not shown as deployed');
  await production.locator('.counters', { hasText: '1 failed' }).waitFor();
  await page.locator('td[data-stage="dev"][data-service="carts"] .image', { hasText: 'carts:0.13.2' }).waitFor();

  step('a failed quality gate is red, with its reason, on every screen');
  const STRICT = SLO.replace('["<600"]', '["<100"]').replace('["<=800"]', '["<=200"]').replace('warning: "50%"', 'warning: "75%"');
  await apiCall('/resource-service/v1/project/sockshop/stage/dev/service/carts/resource', 'POST',
    { resources: [{ resourceURI: 'slo.yaml', resourceContent: Buffer.from(STRICT).toString('base64') }] });
  await page.goto(`${BASE}/bridge/project/sockshop`);
  await page.click('#trigger-button');
  await page.selectOption('#trigger-kind', 'evaluation');
  await page.selectOption('#trigger-service', 'carts');
  await page.selectOption('#trigger-stage', 'dev');
  await page.click('#trigger-submit');
  await page.waitForURL(/\/sequence\/[0-9a-f-]+$/);
  await page.locator('h1 + .badge[data-outcome="bad"]', { hasText: 'failed' }).waitFor({ timeout: 30000 });
  await page.locator('li.task[data-task="evaluation"] .failure', { hasText: 'Evaluation failed since the calculated score' }).waitFor();
  await shot('05c-quality-gate-failed');
  await page.goto(`${BASE}/bridge/project/sockshop/sequence`);
  await page.locator('#sequence-list tbody tr').first().locator('td').first().locator('.badge[data-outcome="bad"]', { hasText: 'failed' }).waitFor();
  await page.goto(`${BASE}/bridge/`);
  await page.locator('article[data-project="sockshop"] ul.plain li').first().locator('.badge[data-outcome="bad"]', { hasText: 'failed' }).waitFor();
  await page.goto(`${BASE}/bridge/project/sockshop`);
  const devCarts = page.locator('td[data-stage="dev"][data-service="carts"]');
  await devCarts.locator('.evaluation .badge', { hasText: 'fail' }).waitFor();
  await devCarts.locator('.counters', { hasText: '1 failed' }).waitFor();

  step('sequence list with filters');
  await page.goto(`${BASE}/bridge/project/sockshop/sequence`);
  await page.locator('#sequence-list tbody tr').nth(1).waitFor();
  await page.selectOption('select[name="service"]', 'orders');
  await page.waitForFunction(() => document.querySelectorAll('#sequence-list tbody tr').length === 1);
  check((await page.locator('#sequence-list tbody').innerText()).includes('aborted'), 'the filtered list shows the aborted sequence');
  check(page.url().includes('service=orders'), 'filters are kept in the URL');
  await shot('08-sequences');

  step('environment, integrations, settings, secrets');
  await page.goto(`${BASE}/bridge/project/sockshop`);
  await page.locator('td[data-stage="production"][data-service="carts"] .image', { hasText: 'carts:0.13.1' }).waitFor();
  // The latest evaluation in dev is the failed gate.
  await page.locator('td[data-stage="dev"][data-service="carts"] .evaluation .badge', { hasText: 'fail' }).waitFor();
  await shot('09-environment-after');
  const [lighthouse] = await apiCall('/controlPlane/v1/uniform/registration?name=lighthouse-service');
  await apiCall('/controlPlane/v1/log', 'POST', { logs: [{ integrationid: lighthouse.id, task: 'evaluation', message: 'e2e: could not reach the SLI provider' }] });
  await page.goto(`${BASE}/bridge/project/sockshop/integrations`);
  await page.locator('tr[data-integration="lighthouse-service"]').waitFor();
  const logCell = page.locator('tr[data-integration="lighthouse-service"] details.log');
  await logCell.locator('summary').click();
  await logCell.getByText('e2e: could not reach the SLI provider').waitFor();
  check((await logCell.innerText()).includes('evaluation'), 'a log entry names its task');
  await shot('10-integrations');
  await page.goto(`${BASE}/bridge/project/sockshop/settings`);
  check((await page.locator('#shipyard').innerText()).includes('triggeredOn'), 'the shipyard is shown');
  await shot('11-settings');
  await apiCall('/secrets/v1/secret', 'POST', { name: 'slack', scope: 'keptn-webhook-service', data: { token: 'super-secret-value' } });
  await page.goto(`${BASE}/bridge/secrets`);
  await page.locator('#secrets th', { hasText: 'slack' }).waitFor();
  check(!(await page.content()).includes('super-secret-value'), 'secret values never reach the page');
  await shot('12-secrets');

  step('deep links and a phone-sized screen');
  await page.goto(deliveryUrl.replace(/\/sequence\/([^/]+)$/, '/sequence/$1/stage/production'));
  await page.locator('section[data-stage="production"]').waitFor();
  check(await page.locator('section[data-stage="dev"]').count() === 0, 'the stage link shows that stage only');
  await page.setViewportSize({ width: 390, height: 844 });
  await page.goto(`${BASE}/bridge/`);
  await page.locator('article[data-project="sockshop"]').waitFor();
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  check(overflow <= 1, `no sideways scrolling on a phone (overflow ${overflow}px)`);
  await shot('13-dashboard-phone');

  check(consoleErrors.length === 0, `no errors in the browser console: ${consoleErrors.join(' | ')}`);

  step('an expired token on a deep link leads to the login form, then back');
  await page.setViewportSize({ width: 1280, height: 800 });
  await page.evaluate(() => sessionStorage.setItem('keelson.token', 'expired'));
  await page.goto(`${BASE}/bridge/project/sockshop/sequence?service=orders`);
  await page.locator('#token').waitFor();
  check(page.url().includes('next='), 'the login keeps where to go');
  await page.fill('#token', TOKEN);
  await page.keyboard.press('Enter');
  await page.waitForURL(/\/bridge\/project\/sockshop\/sequence\?service=orders$/);
  await page.locator('#sequence-list tbody tr').first().waitFor();
  await page.goto(`${BASE}/bridge/project/%E0`);
  await page.getByText('Page not found').waitFor();
  console.log('bridge e2e: all steps passed');
} catch (error) {
  await shot('failure').catch(() => {});
  console.error(error);
  process.exitCode = 1;
} finally {
  await browser.close();
}
