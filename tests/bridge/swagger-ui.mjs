// Swagger UI in Debian's headless Chromium, driven by playwright-core: the page lists Keelson's
// operations, "Authorize" takes the API token, and "Try it out" on GET /project answers with the
// project the test created. Run by tests/openapi.rs against a running Keelson (BASE, TOKEN, OUT).

import { launchChromium } from './chromium.mjs';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';

const { BASE, TOKEN, OUT } = process.env;
if (!BASE || !TOKEN || !OUT) throw new Error('BASE, TOKEN and OUT must be set');
mkdirSync(OUT, { recursive: true });

const browser = await launchChromium();
const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
const problems = [];
page.on('console', (message) => { if (message.type() === 'error') problems.push(message.text()); });
page.on('pageerror', (error) => problems.push(error.message));
const outside = [];
page.on('request', (request) => { if (!request.url().startsWith(BASE) && !request.url().startsWith('data:')) outside.push(request.url()); });

try {
  await page.goto(`${BASE}/api/swagger-ui/`);
  await page.locator('.opblock').first().waitFor({ timeout: 30000 });
  const operations = await page.locator('.opblock').count();
  console.log(`count operations ${operations}`);
  const title = await page.locator('.info .title').innerText();
  if (!title.includes('Keelson API')) throw new Error(`title: ${title}`);
  await page.screenshot({ path: join(OUT, 'swagger-ui-operations.png'), fullPage: false });

  await page.getByRole('button', { name: /Authorize/ }).first().click();
  await page.locator('.modal-ux input[type=text]').first().fill(TOKEN);
  await page.locator('.modal-ux .auth-btn-wrapper button.authorize').click();
  await page.locator('.modal-ux .auth-btn-wrapper button.btn-done').click();

  const getProjects = page.locator('#operations-project-getProjects');
  await getProjects.locator('.opblock-summary').click();
  await getProjects.getByRole('button', { name: 'Try it out' }).click();
  await getProjects.getByRole('button', { name: 'Execute' }).click();
  const status = getProjects.locator('.live-responses-table .response .response-col_status').first();
  await status.waitFor({ timeout: 15000 });
  const code = (await status.innerText()).trim();
  const body = await getProjects.locator('.live-responses-table .response-col_description pre').first().innerText();
  if (code !== '200' || !body.includes('sockshop')) throw new Error(`GET /project answered ${code}: ${body}`);
  console.log('answered 200 with sockshop');
  await page.screenshot({ path: join(OUT, 'swagger-ui-try-it-out.png'), fullPage: false });

  if (problems.length) throw new Error(`console errors: ${problems.join(' | ')}`);
  if (outside.length) throw new Error(`requests left the server: ${outside.join(' ')}`);
  console.log('all steps passed');
} finally {
  await browser.close();
}
