// End-to-end: the analytics page of a playbook (/playbooks/{name}/stats) against a real
// `playbook serve` with a known mix of conversations, in Debian's headless Chromium.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { SCREENSHOTS, startServer, launchBrowser, newPage, eventually } from '../lib.mjs';

const ADMIN = 'admin-e2e-token-0123456789';
const TIMEOUT = 10000;

let server;
let browser;

before(async () => {
  mkdirSync(SCREENSHOTS, { recursive: true });
  server = await startServer();
  browser = await launchBrowser();
});

after(async () => {
  if (browser) await browser.close();
  if (server) await server.stop();
});

async function post(pathname, body, token) {
  const headers = { 'content-type': 'application/json' };
  if (token) headers.Authorization = `Bearer ${token}`;
  const r = await fetch(`${server.base}${pathname}`, { method: 'POST', headers, body: JSON.stringify(body) });
  if (!r.ok) throw new Error(`POST ${pathname}: ${r.status} ${await r.text()}`);
  return r.json();
}

/** Starts a demo conversation and presses the answers given (1-based). */
async function visit(...choices) {
  const c = await post('/api/conversations', { playbook: 'demo' });
  for (const choice of choices) {
    await post(`/api/conversations/${c.conversation}/messages`, { choice }, c.token);
  }
  return c;
}

test('the analytics page draws the traffic on the graph, the funnel and the tables', async () => {
  // Four browse, two too small, one asks for sales (ana is online: it waits).
  for (let i = 0; i < 4; i++) await visit(3);
  for (let i = 0; i < 2; i++) await visit(1, 1);
  await visit(2);

  const problems = [];
  const page = await newPage(browser, problems);
  const foreign = [];
  await page.context().route('**/*', (route) => {
    const url = route.request().url();
    if (url.startsWith(server.base)) return route.continue();
    foreign.push(url);
    return route.abort();
  });
  await page.goto(`${server.base}/playbooks/demo/stats`);
  // Admin only: the page asks for the token first, and says when it is refused.
  await page.getByLabel('Admin token').fill('wrong-token-0123456789');
  await page.getByRole('button', { name: 'Show analytics' }).click();
  await eventually(async () => (await page.locator('#status').innerText()).includes('refused'), TIMEOUT, 'a refused token is said');
  await page.getByLabel('Admin token').fill(ADMIN);
  await page.getByRole('button', { name: 'Show analytics' }).click();
  await page.locator('#graph svg').waitFor({ timeout: TIMEOUT });

  const tile = (label) => page.locator('.tile', { has: page.locator('.tile-label', { hasText: new RegExp(`^${label}$`) }) }).locator('.tile-value');
  assert.equal(await tile('started').innerText(), '7');
  assert.equal(await tile('disqualified').innerText(), '2');
  assert.equal(await tile('no outcome').innerText(), '4');
  assert.equal(await tile('live chats requested').innerText(), '1');
  // The graph carries the counts: 7 entered the first card, 4 took "Just browsing".
  const graph = await page.locator('#graph').innerText();
  assert.match(graph, /entered 7/);
  assert.match(graph, /Just browsing · 4 · 57%/);
  // The funnel and the card table agree.
  assert.match(await page.locator('#funnel').innerText(), /Disqualified: 2 \(28\.6%\)/);
  const welcome = page.locator('#cards tbody tr', { hasText: 'welcome' });
  assert.deepEqual(
    (await welcome.locator('td').allInnerTexts()).slice(0, 6),
    ['welcome', 'question', '7', '7', '0', '0'],
  );
  const sales = page.locator('#cards tbody tr', { hasText: 'sales' }).first();
  assert.equal((await sales.locator('td').allInnerTexts())[2], '1');
  await page.screenshot({ path: path.join(SCREENSHOTS, 'stats.png'), fullPage: true });
  assert.deepEqual(foreign, []);
  assert.deepEqual(problems, []);
  await page.context().close();
});
