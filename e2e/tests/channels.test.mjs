// End-to-end: the widget's "continue on WhatsApp" menu against a real `playbook serve` with
// `[channels.whatsapp]` configured, in Debian's headless Chromium. Run `cargo build` first.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { SCREENSHOTS, startServer, launchBrowser, newPage, conversationId, eventually } from '../lib.mjs';

const TIMEOUT = 10000;
const WA_SECRET = 'e2e-whatsapp-app-secret';

// The Graph API root points at a closed port: nothing is sent anywhere (outbound sends fail
// and are retried in the background, which this test does not look at).
const WHATSAPP = `
[channels.whatsapp]
phone_number_id = "1000001"
number = "15550001111"
token_env = "E2E_WA_TOKEN"
app_secret_env = "E2E_WA_SECRET"
verify_token = "verify-me"
playbook = "demo"
base_url = "http://127.0.0.1:9"
`;

let server;
let browser;

before(async () => {
  mkdirSync(SCREENSHOTS, { recursive: true });
  server = await startServer({
    extraConfig: WHATSAPP,
    env: { E2E_WA_TOKEN: 'e2e-whatsapp-token', E2E_WA_SECRET: WA_SECRET },
  });
  browser = await launchBrowser();
});

after(async () => {
  if (browser) await browser.close();
  if (server) await server.stop();
});

async function expectText(locator, text, what) {
  await eventually(async () => (await locator.innerText()).includes(text), TIMEOUT, `${what}: "${text}"`);
}

/** A WhatsApp Cloud API delivery of one text message, signed like Meta signs it. */
async function deliverWhatsApp(from, id, text) {
  const body = JSON.stringify({
    object: 'whatsapp_business_account',
    entry: [{
      id: 'waba-e2e',
      changes: [{
        field: 'messages',
        value: {
          messaging_product: 'whatsapp',
          metadata: { display_phone_number: '15550001111', phone_number_id: '1000001' },
          contacts: [{ profile: { name: 'Vera' }, wa_id: from }],
          messages: [{ from, id, timestamp: String(Math.floor(Date.now() / 1000)), type: 'text', text: { body: text } }],
        },
      }],
    }],
  });
  const signature = 'sha256=' + createHmac('sha256', WA_SECRET).update(body).digest('hex');
  const r = await fetch(`${server.base}/api/channels/whatsapp/webhook`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-hub-signature-256': signature },
    body,
  });
  assert.equal(r.status, 200, `webhook delivery: ${r.status} ${await r.text()}`);
}

/** Starts a conversation in the inline widget and opens the channel menu. */
async function openMenu(page) {
  await page.goto(`${server.base}/widget?playbook=demo`);
  await expectText(page.locator('.log'), "Hi, I'm Ava from Acme.", 'greeting');
  const menuButton = page.getByRole('button', { name: 'Continue in another app' });
  await menuButton.waitFor({ timeout: TIMEOUT });
  await menuButton.click();
  assert.equal(await menuButton.getAttribute('aria-expanded'), 'true');
  return menuButton;
}

test('GET /api/widget lists WhatsApp, the configured and linkable channel', async () => {
  const r = await fetch(`${server.base}/api/widget`);
  assert.equal(r.status, 200);
  const look = await r.json();
  assert.deepEqual(look.channels, [{ channel: 'whatsapp', label: 'WhatsApp' }]);
});

test('the visitor opens the channel menu, picks WhatsApp and sees a QR code, the wa.me link and the code', async () => {
  const problems = [];
  const page = await newPage(browser, problems);
  await openMenu(page);

  // Only the configured channel is offered.
  const menu = page.locator('#chat-channel-menu');
  assert.deepEqual(await menu.getByRole('button').allInnerTexts(), ['WhatsApp']);

  const answer = page.waitForResponse((r) => r.url().endsWith('/link') && r.request().method() === 'POST');
  await menu.getByRole('button', { name: 'WhatsApp', exact: true }).click();
  const res = await answer;
  assert.equal(res.status(), 201);
  const link = await res.json();
  assert.equal(link.channel, 'whatsapp');
  assert.match(link.code, /^LINK-[A-Z0-9]{10}$/);
  assert.equal(link.url, `https://wa.me/15550001111?text=${link.code}`);

  const panel = page.locator('#chat-link-panel');
  await panel.waitFor({ state: 'visible', timeout: TIMEOUT });
  await expectText(panel, 'Continue on WhatsApp', 'the panel heading');
  // The QR code is the server's SVG, imported as an <svg> node and visible.
  const qr = panel.locator('svg.qr');
  await qr.waitFor({ state: 'visible', timeout: TIMEOUT });
  assert.equal(await qr.getAttribute('role'), 'img');
  assert.equal(await qr.getAttribute('aria-label'), 'QR code for WhatsApp');
  const box = await qr.boundingBox();
  assert.ok(box && box.width >= 100 && box.height >= 100, `the QR code is large enough to scan: ${JSON.stringify(box)}`);
  assert.ok(await qr.locator('path, rect').count() > 0, 'the QR code draws something');
  assert.equal(await qr.locator('script, foreignObject').count(), 0);
  // The code as text, and the app link with it.
  assert.equal(await panel.locator('.link-code').innerText(), link.code);
  const open = panel.getByRole('link', { name: 'Open WhatsApp' });
  assert.equal(await open.getAttribute('href'), `https://wa.me/15550001111?text=${link.code}`);
  assert.equal(await open.getAttribute('target'), '_blank');
  assert.match(await open.getAttribute('rel'), /\bnoopener\b/);
  // The chat's log is out of the way while the panel shows; the back button has focus.
  assert.equal(await page.locator('.log').isVisible(), false);
  assert.equal(await page.evaluate(() => {
    const root = document.querySelector('[data-playbook-chat]').shadowRoot;
    return root.activeElement && root.activeElement.textContent;
  }), 'Back to the chat');
  await page.screenshot({ path: path.join(SCREENSHOTS, 'widget-channels.png') });

  // Esc closes the panel: the chat is back and focus is on the menu button.
  await page.keyboard.press('Escape');
  await panel.waitFor({ state: 'hidden', timeout: TIMEOUT });
  assert.equal(await page.locator('.log').isVisible(), true);
  assert.equal(await page.evaluate(() => {
    const root = document.querySelector('[data-playbook-chat]').shadowRoot;
    return root.activeElement && root.activeElement.getAttribute('aria-label');
  }), 'Continue in another app');

  // Esc on the open menu closes the menu (and not the inline chat).
  await page.getByRole('button', { name: 'Continue in another app' }).click();
  await menu.waitFor({ state: 'visible', timeout: TIMEOUT });
  await page.keyboard.press('Escape');
  await menu.waitFor({ state: 'hidden', timeout: TIMEOUT });

  assert.deepEqual(problems, []);
  await page.context().close();
});

test('once the visitor sends the code on WhatsApp the chat is linked; Disconnect brings it back', async () => {
  const problems = [];
  const page = await newPage(browser, problems);
  await openMenu(page);
  const answer = page.waitForResponse((r) => r.url().endsWith('/link') && r.request().method() === 'POST');
  await page.locator('#chat-channel-menu').getByRole('button', { name: 'WhatsApp', exact: true }).click();
  const link = await (await answer).json();
  await page.locator('#chat-link-panel svg.qr').waitFor({ state: 'visible', timeout: TIMEOUT });

  // The visitor sends the code from their phone; then writes on WhatsApp.
  await deliverWhatsApp('4915112345678', 'wamid.e2e-link-1', link.code);
  await deliverWhatsApp('4915112345678', 'wamid.e2e-link-2', 'Hello from my phone');
  // The line arrives over the socket, tagged with its channel; the panel has closed.
  const phoneLine = page.locator('li.msg.visitor', { hasText: 'Hello from my phone' });
  await phoneLine.waitFor({ timeout: TIMEOUT });
  assert.equal(await phoneLine.locator('.channel').innerText(), 'via WhatsApp');
  await page.locator('#chat-link-panel').waitFor({ state: 'hidden', timeout: TIMEOUT });
  const id = await conversationId(page, server.base, 'demo');
  const history = await (await fetch(`${server.base}/api/conversations/${id}/messages`, {
    headers: { authorization: `Bearer ${await page.evaluate(([origin]) => JSON.parse(localStorage.getItem(`playbook-chat:${origin}:demo`)).token, [server.base])}` },
  })).json();
  assert.equal(history.linked, 'whatsapp');

  // After a reload the history still tags every WhatsApp line and the menu offers to disconnect.
  await page.reload();
  await phoneLine.waitFor({ timeout: TIMEOUT });
  const lines = page.locator('li.msg');
  const tagged = await lines.evaluateAll((items) => items.map((li) => ({
    text: li.querySelector('.text').textContent,
    badge: li.querySelector('.channel') ? li.querySelector('.channel').textContent : null,
  })));
  const fromPhone = tagged.filter((l) => l.text === 'Hello from my phone' || l.text === link.code);
  assert.deepEqual(fromPhone.map((l) => l.badge), ['via WhatsApp', 'via WhatsApp'], JSON.stringify(tagged));
  const menuButton = page.getByRole('button', { name: 'Continue in another app' });
  await menuButton.click();
  const disconnect = page.getByRole('button', { name: 'Disconnect WhatsApp' });
  await disconnect.waitFor({ timeout: TIMEOUT });
  assert.equal(await page.locator('#chat-channel-menu').getByRole('button').count(), 1);

  const gone = page.waitForResponse((r) => r.url().endsWith('/link') && r.request().method() === 'DELETE');
  await disconnect.click();
  const unlinked = await gone;
  assert.equal(unlinked.status(), 200);
  const { messages } = await unlinked.json();
  // The server's new lines (the notice that the chat continues here) join the chat.
  assert.ok(messages.length > 0, 'DELETE …/link answers with the new lines');
  for (const m of messages) {
    await expectText(page.locator(`li.msg[data-seq="${m.seq}"]`), m.text, 'a line from the disconnect');
  }
  // The menu offers WhatsApp again.
  await menuButton.click();
  await page.locator('#chat-channel-menu').getByRole('button', { name: 'WhatsApp', exact: true }).waitFor({ timeout: TIMEOUT });

  assert.deepEqual(problems, []);
  await page.context().close();
});
