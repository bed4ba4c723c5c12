// End-to-end: the visitor widget and the agent inbox against a real `playbook serve`, in
// Debian's headless Chromium. Run `cargo build` first (the tests start target/debug/playbook).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import {
  AGENTS, SCREENSHOTS, startServer, launchBrowser, newPage, conversationId, signIn, apiGet, eventually,
} from '../lib.mjs';

const INJECTION = '<img src=x onerror=alert(1)>';
const TIMEOUT = 10000;

// Fail fast: a missing element should not wait for the default 30 s.

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

function widget(page) {
  return {
    log: page.locator('.log'),
    title: page.locator('#chat-title'),
    status: page.locator('.chat-head .status'),
    hint: page.locator('#chat-hint'),
    typing: page.locator('.typing'),
    answer: (name) => page.getByRole('button', { name, exact: true }),
    async say(text) {
      await page.getByLabel('Your message').fill(text);
      await page.getByLabel('Your message').press('Enter');
    },
  };
}

async function expectText(locator, text, what) {
  await eventually(async () => (await locator.innerText()).includes(text), TIMEOUT, `${what}: "${text}"`);
}

test('a visitor reaches live chat, an agent picks it up, they talk, the agent closes and makes a deal', async () => {
  const problems = [];
  const visitor = await newPage(browser, problems);
  const agent = await newPage(browser, problems);
  const w = widget(visitor);

  await visitor.goto(`${server.base}/widget?playbook=demo`);
  await expectText(w.log, "Hi, I'm Ava from Acme.", 'greeting');
  await assert.doesNotReject(w.title.filter({ hasText: 'Ava' }).waitFor({ timeout: TIMEOUT }));
  await w.answer('Talk to sales').click();
  await expectText(w.log, 'Connecting you with our sales team...', 'online message');
  const id = await conversationId(visitor, server.base, 'demo');
  assert.ok(id, 'the widget keeps its conversation in localStorage');

  // The agent signs in and finds the chat in Unassigned (pushed live over the agent socket).
  await signIn(agent, server.base, AGENTS.ana);
  await agent.getByText('Signed in as ana').waitFor({ timeout: TIMEOUT });
  const item = agent.locator(`#conv-list button[data-id="${id}"]`);
  await item.waitFor({ timeout: TIMEOUT });
  await item.click();
  await agent.getByRole('button', { name: 'Assign to me' }).click();
  // The widget's header shows the agent the moment they join, before they write.
  await w.title.filter({ hasText: 'ana' }).waitFor({ timeout: TIMEOUT });
  await agent.locator(`#tab-mine[aria-selected="true"]`).waitFor({ timeout: TIMEOUT });
  await agent.locator(`#conv-list button[data-id="${id}"]`).waitFor({ timeout: TIMEOUT });

  // The reassign box suggests only online agents (GET /api/agent/agents): not bob, offline.
  await agent.getByLabel('Reassign to').focus();
  await eventually(async () => (await agent.locator('#agent-names option').count()) === 0 &&
    (await agent.evaluate(() => document.getElementById('agent-names').dataset.loaded === 'yes')),
  TIMEOUT, 'the agents list loaded');
  // Reassigning to an agent who is offline is refused, and says so.
  await agent.getByLabel('Reassign to').fill('bob');
  await agent.getByRole('button', { name: 'Reassign' }).click();
  await agent.locator('#conv-error').filter({ hasText: /./ }).waitFor({ timeout: TIMEOUT });
  // Once bob is online he is suggested.
  const online = await fetch(`${server.base}/api/agent/presence`, {
    method: 'PUT',
    headers: { authorization: `Bearer ${AGENTS.bob}`, 'content-type': 'application/json' },
    body: JSON.stringify({ presence: 'online' }),
  });
  assert.equal(online.status, 200);
  await agent.getByLabel('Reply').focus();
  await agent.getByLabel('Reassign to').focus();
  await eventually(async () => (await agent.locator('#agent-names option[value="bob"]').count()) === 1,
    TIMEOUT, 'bob suggested once online');
  await agent.getByLabel('Reassign to').fill('');
  await fetch(`${server.base}/api/agent/presence`, {
    method: 'PUT',
    headers: { authorization: `Bearer ${AGENTS.bob}`, 'content-type': 'application/json' },
    body: JSON.stringify({ presence: 'offline' }),
  });

  // They talk; the bot's name becomes the agent's.
  await agent.getByLabel('Reply').fill('Hi, I am Ana from sales. How can I help?');
  // While the agent types, the visitor sees it.
  await expectText(w.typing, 'ana is typing', 'the agent typing, in the widget');
  await agent.getByLabel('Reply').press('Enter');
  await expectText(w.log, 'Hi, I am Ana from sales. How can I help?', 'agent reply in widget');
  await w.title.filter({ hasText: 'ana' }).waitFor({ timeout: TIMEOUT });
  await w.say('We need 50 seats for the whole team.');
  await expectText(agent.locator('#conv-log'), 'We need 50 seats for the whole team.', 'visitor message in inbox');

  // A reload keeps the conversation and shows the full history.
  await visitor.reload();
  await expectText(w.log, 'We need 50 seats for the whole team.', 'history after reload');
  await expectText(w.log, 'Hi, I am Ana from sales. How can I help?', 'history after reload');
  await expectText(w.log, "Hi, I'm Ava from Acme.", 'history after reload');
  assert.equal(await conversationId(visitor, server.base, 'demo'), id, 'same conversation after reload');
  await visitor.screenshot({ path: path.join(SCREENSHOTS, 'widget.png') });

  // After the reload the socket is live again.
  await agent.getByLabel('Reply').fill('Great, I will set up a demo for you.');
  await agent.getByLabel('Reply').press('Enter');
  await expectText(w.log, 'Great, I will set up a demo for you.', 'agent reply after reload');

  // The agent closes, then creates a deal from the closed conversation.
  await agent.getByRole('button', { name: 'Close conversation' }).click();
  await agent.locator(`#tab-closed[aria-selected="true"]`).waitFor({ timeout: TIMEOUT });
  await agent.locator(`#conv-list button[data-id="${id}"]`).waitFor({ timeout: TIMEOUT });
  await eventually(async () => agent.getByRole('button', { name: 'Close conversation' }).isDisabled(), TIMEOUT, 'close disabled');
  await expectText(w.log, 'Have a great day!', 'the closed branch in the widget');
  // Once the agent closed, the header and the closing line are the bot's again.
  await w.title.filter({ hasText: 'Ava' }).waitFor({ timeout: TIMEOUT });
  assert.equal(
    await w.log.locator('li.msg.bot', { hasText: 'Have a great day!' }).locator('.who').innerText(),
    'Ava',
    'the closing line is the bot\'s',
  );

  await agent.getByRole('radio', { name: 'Deal' }).check();
  await agent.getByLabel('Title', { exact: true }).fill('Acme: 50 seats');
  await agent.getByLabel('Value', { exact: true }).fill('12000');
  await agent.getByLabel('Currency', { exact: true }).fill('EUR');
  await agent.getByLabel('Name', { exact: true }).fill('Vera Visitor');
  await agent.getByLabel('Email', { exact: true }).fill('vera@example.com');
  await agent.getByLabel('Phone', { exact: true }).fill('+49 30 1234567');
  await agent.getByLabel('Organization', { exact: true }).fill('Vera GmbH');
  await agent.getByLabel('Note', { exact: true }).fill('Wants a demo next week.');
  await agent.getByRole('button', { name: 'Create' }).click();
  await expectText(agent.locator('#records'), 'Acme: 50 seats', 'created deal in the inbox');
  await agent.evaluate(() => window.scrollTo(0, 0));
  await agent.screenshot({ path: path.join(SCREENSHOTS, 'inbox.png'), fullPage: true });

  const records = await eventually(async () => {
    const list = await apiGet(server.base, '/api/records?after=0', AGENTS.ana);
    const all = Array.isArray(list) ? list : (list.records || []);
    return all.some((r) => JSON.stringify(r).includes('Acme: 50 seats')) && all;
  }, TIMEOUT, 'the deal in GET /api/records');
  const deal = records.find((r) => JSON.stringify(r).includes('Acme: 50 seats'));
  assert.match(JSON.stringify(deal), /deal/i);
  assert.match(JSON.stringify(deal), /12000/);
  assert.match(JSON.stringify(deal), /vera@example\.com/);

  assert.deepEqual(problems, []);
  await visitor.context().close();
  await agent.context().close();
});

test('agents notice new chats: a desktop notification, the unread count in the tab title', async () => {
  const problems = [];
  const agent = await newPage(browser, problems);
  // The browser has granted notifications, and the inbox is a background tab: record what it
  // shows instead of drawing it.
  await agent.context().grantPermissions(['notifications'], { origin: server.base });
  await agent.addInitScript(() => {
    window.__notes = [];
    const Real = window.Notification;
    function Recorder(title, options) {
      window.__notes.push({ title, body: options && options.body });
      return Real ? new Real(title, options) : {};
    }
    Recorder.permission = 'granted';
    Recorder.requestPermission = () => Promise.resolve('granted');
    window.Notification = Recorder;
    document.hasFocus = () => false;
  });
  await signIn(agent, server.base, AGENTS.ana);
  await agent.getByText('Signed in as ana').waitFor({ timeout: TIMEOUT });
  const base = await agent.title();

  const visitor = await newPage(browser, problems);
  await visitor.goto(`${server.base}/widget?playbook=quick`);
  await visitor.getByRole('button', { name: 'Yes please', exact: true }).click();

  await eventually(async () => (await agent.evaluate(() => window.__notes.length)) >= 1, TIMEOUT, 'a desktop notification');
  const notes = await agent.evaluate(() => window.__notes);
  assert.match(notes[0].body, /New conversation waiting/);
  await eventually(async () => (await agent.title()) === `(1) ${base}`, TIMEOUT, 'the unread count in the title');
  // The in-page notice sits where it covers nothing of the conversation.
  const box = await agent.locator('#toasts').boundingBox();
  assert.ok(box && box.x < 400, `toasts at the left: ${JSON.stringify(box)}`);
  assert.deepEqual(problems, []);
  await visitor.context().close();
  await agent.context().close();
});

test('waiting visitors see their place in line', async () => {
  const problems = [];
  const first = await newPage(browser, problems);
  const second = await newPage(browser, problems);
  for (const page of [first, second]) {
    await page.goto(`${server.base}/widget?playbook=quick`);
    await page.getByRole('button', { name: 'Yes please', exact: true }).click();
    await expectText(widget(page).log, 'Connecting you with a person...', 'queued');
  }
  // The quick playbook waits 3 s for an agent: both are in line meanwhile.
  await expectText(widget(second).status, 'You are number 2 in line.', 'second in line');
  await expectText(widget(first).status, 'You are number 1 in line.', 'first in line');
  assert.deepEqual(problems, []);
  await first.context().close();
  await second.context().close();
});

test('the widget speaks the playbook\'s language: German', async () => {
  const problems = [];
  const page = await newPage(browser, problems);
  const w = widget(page);
  await page.goto(`${server.base}/widget?playbook=beratung`);
  await expectText(w.log, 'Wie ist Ihre E-Mail-Adresse?', 'the question');
  const input = page.locator('#chat-input');
  await eventually(async () => (await input.getAttribute('placeholder')) === 'Ihre Antwort …', TIMEOUT, 'German placeholder');
  await page.getByRole('button', { name: 'Senden', exact: true }).waitFor({ timeout: TIMEOUT });
  await input.fill('lena@example.de');
  await input.press('Enter');
  await expectText(w.log, 'Danke, wir melden uns!', 'the answer');
  assert.equal(await w.log.locator('li.msg.visitor .who').first().innerText(), 'Sie', 'the visitor is "Sie"');
  await expectText(w.status, 'Gespräch beendet', 'the status line');
  await page.getByRole('button', { name: 'Neues Gespräch beginnen' }).waitFor({ timeout: TIMEOUT });
  await page.screenshot({ path: path.join(SCREENSHOTS, 'widget-de.png') });
  assert.deepEqual(problems, []);
  await page.context().close();
});

test('nobody picks up: the visitor sees the offline message, leaves an email, a lead is captured', async () => {
  const problems = [];
  const visitor = await newPage(browser, problems);
  const w = widget(visitor);

  await visitor.goto(`${server.base}/widget?playbook=quick`);
  await w.title.filter({ hasText: 'Max' }).waitFor({ timeout: TIMEOUT });
  await w.answer('Yes please').click();
  await expectText(w.log, 'Connecting you with a person...', 'online message');
  // The wait is 3 s; the offline message arrives over the WebSocket.
  await expectText(w.log, 'Sorry, nobody is free right now.', 'offline message');
  await expectText(w.log, "What's your email?", 'offline branch question');

  // A bad email gets the re-prompt: in the chat, and in the text box's alert for screen
  // readers (the server marks the line `"kind": "reprompt"`, docs/api.md).
  await w.say('not an email');
  await expectText(w.log, "That doesn't look like an email address.", 'the re-prompt');
  await expectText(w.hint, "That doesn't look like an email address. Could you check it?", 'the re-prompt under the text box');
  assert.equal(await w.log.locator('li.msg.reprompt').count(), 1, 'the re-prompt line is marked as one');
  // Seen once: the line under the text box is for screen readers only (an alert), not shown.
  assert.equal(await w.hint.evaluate((e) => e.classList.contains('spoken')), true, 'the re-prompt is not shown twice');
  await w.say('lead@example.com');
  await expectText(w.log, "Thanks! We'll write to lead@example.com.", 'thanks');
  assert.equal(await w.hint.innerText(), '', 'no re-prompt left under the text box after a good answer');

  await eventually(async () => {
    const list = await apiGet(server.base, '/api/records?after=0', AGENTS.ana);
    const all = Array.isArray(list) ? list : (list.records || []);
    return all.some((r) => /lead/i.test(JSON.stringify(r)) && JSON.stringify(r).includes('lead@example.com'));
  }, TIMEOUT, 'the lead in GET /api/records');

  assert.deepEqual(problems, []);
  await visitor.context().close();
});

test('markup typed by a visitor or an agent shows literally in the widget and the inbox', async () => {
  const problems = [];
  const visitor = await newPage(browser, problems);
  const agent = await newPage(browser, problems);
  const w = widget(visitor);

  // Through the bot: the visitor's name is echoed back in a template.
  await visitor.goto(`${server.base}/widget?playbook=demo`);
  await w.answer('Book a demo').click();
  await w.answer('11-200').click();
  await expectText(w.log, "What's your name?", 'name question');
  await w.say(INJECTION);
  await expectText(w.log, `What's your work email, ${INJECTION}?`, 'templated name shown literally');

  // Through the desk, both ways.
  await visitor.evaluate(() => localStorage.clear());
  await visitor.goto(`${server.base}/widget?playbook=demo`);
  await w.answer('Talk to sales').click();
  const id = await eventually(() => conversationId(visitor, server.base, 'demo'), TIMEOUT, 'conversation id');
  await signIn(agent, server.base, AGENTS.ana);
  await agent.locator(`#conv-list button[data-id="${id}"]`).click();
  await agent.getByRole('button', { name: 'Assign to me' }).click();
  await agent.locator(`#tab-mine[aria-selected="true"]`).waitFor({ timeout: TIMEOUT });
  await w.say(INJECTION);
  await expectText(agent.locator('#conv-log'), INJECTION, 'visitor markup in the inbox');
  await agent.getByLabel('Reply').fill(`agent says ${INJECTION}`);
  await agent.getByLabel('Reply').press('Enter');
  await expectText(w.log, `agent says ${INJECTION}`, 'agent markup in the widget');
  await expectText(agent.locator(`#conv-list button[data-id="${id}"]`), INJECTION, 'markup in the folder list');

  assert.equal(await visitor.locator('.log img').count(), 0, 'no <img> element in the widget');
  assert.equal(await agent.locator('#conv-log img, #conv-list img').count(), 0, 'no <img> element in the inbox');
  assert.deepEqual(problems, []);
  await visitor.context().close();
  await agent.context().close();
});

test('the inbox shows nothing without a valid token', async () => {
  const problems = [];
  const page = await newPage(browser, problems);
  await page.goto(`${server.base}/inbox`);
  await page.getByLabel('Agent token').fill('not-a-token');
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.locator('#signin-error').filter({ hasText: /not valid/ }).waitFor({ timeout: TIMEOUT });
  assert.equal(await page.locator('#app').isVisible(), false);
  assert.equal(await page.locator('#who').isVisible(), false);
  // A stale token in sessionStorage is checked before anything shows.
  await page.evaluate(() => sessionStorage.setItem('playbook-agent-token', 'stale'));
  await page.reload();
  await page.getByLabel('Agent token').waitFor({ timeout: TIMEOUT });
  assert.equal(await page.locator('#app').isVisible(), false);
  assert.deepEqual(problems, []);
  await page.context().close();
});

test('the playbook view draws the graph offline', async () => {
  const problems = [];
  const page = await newPage(browser, problems);
  // Anything not served by our server would fail: the page must not need the network.
  const foreign = [];
  await page.context().route('**/*', (route) => {
    const url = route.request().url();
    if (url.startsWith(server.base)) return route.continue();
    foreign.push(url);
    return route.abort();
  });
  await page.goto(`${server.base}/playbooks/demo`);
  await page.locator('#graph svg').waitFor({ timeout: TIMEOUT });
  await expectText(page.locator('#graph'), 'welcome', 'a card id in the picture');
  await page.screenshot({ path: path.join(SCREENSHOTS, 'graph.png'), fullPage: true });
  assert.deepEqual(foreign, []);
  assert.deepEqual(problems, []);
  await page.context().close();
});

test('the embeddable script adds a chat bubble to a page', async () => {
  const problems = [];
  const page = await newPage(browser, problems);
  // A host page "on the site" (same origin as the server, so no CORS is involved here).
  await page.route(`${server.base}/shop`, (route) => route.fulfill({
    contentType: 'text/html',
    body: `<!doctype html><html lang="en"><head><title>Shop</title></head><body><h1>Acme shop</h1>
      <script src="${server.base}/widget.js" data-playbook="demo" async></script></body></html>`,
  }));
  await page.goto(`${server.base}/shop`);
  const bubble = page.getByRole('button', { name: 'Open chat' });
  await bubble.click();
  await expectText(page.locator('.log'), "Hi, I'm Ava from Acme.", 'greeting in the bubble');
  await page.getByRole('button', { name: 'Book a demo', exact: true }).click();
  await expectText(page.locator('.log'), 'How many people work at your company?', 'next question');
  // The config's look: its accent colour on the launcher and the header, its avatar shown.
  const colour = (loc) => loc.evaluate((e) => getComputedStyle(e).backgroundColor);
  assert.equal(await colour(page.locator('.chat-head')), 'rgb(15, 118, 110)');
  assert.equal(await colour(page.locator('button.bubble')), 'rgb(15, 118, 110)');
  assert.equal(await page.locator('.chat-head img.avatar').isVisible(), true);
  await page.screenshot({ path: path.join(SCREENSHOTS, 'bubble.png') });
  // Escape closes the panel and gives focus back to the bubble.
  await page.keyboard.press('Escape');
  await page.getByRole('button', { name: 'Open chat' }).waitFor({ timeout: TIMEOUT });
  assert.equal(await page.locator('.log').isVisible(), false);
  assert.deepEqual(problems, []);
  await page.context().close();
});

test('the embeddable script works on a page of another origin (CORS)', async () => {
  const problems = [];
  const page = await newPage(browser, problems);
  // The host page comes from a second local server on another port: another origin, so the
  // widget's fetches are cross-origin (with preflights, as they carry JSON and a bearer
  // token). It is a real loopback server because Chromium refuses pages it cannot place in
  // an address space (such as a route-fulfilled one) access to loopback addresses.
  const host = http.createServer((req, res) => {
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
    res.end(`<!doctype html><html lang="en"><head><title>Site</title></head><body><h1>Another site</h1>
      <script src="${server.base}/widget.js" data-playbook="demo" async></script></body></html>`);
  });
  await new Promise((resolve) => host.listen(0, '127.0.0.1', resolve));
  const other = `http://127.0.0.1:${host.address().port}`;
  assert.notEqual(other, server.base);
  try {
    await page.goto(`${other}/site`);
    await page.getByRole('button', { name: 'Open chat' }).click();
    await expectText(page.locator('.log'), "Hi, I'm Ava from Acme.", 'greeting across origins');
    await page.getByRole('button', { name: 'Book a demo', exact: true }).click();
    await expectText(page.locator('.log'), 'How many people work at your company?', 'answer across origins');
    assert.deepEqual(problems, []);
  } finally {
    await page.context().close();
    host.close();
  }
});

test('the inbox shows who waits, where and for how long; `/` in the reply box inserts a saved reply', async () => {
  const problems = [];
  const visitor = await newPage(browser, problems);
  const agent = await newPage(browser, problems);
  const w = widget(visitor);

  await visitor.goto(`${server.base}/widget?playbook=known`);
  await expectText(w.log, "What's your name?", 'the name question');
  await w.say('Eve Adams');
  await expectText(w.log, 'And your email?', 'the email question');
  await w.say('eve@example.com');
  await expectText(w.log, 'Connecting you with sales...', 'waiting for an agent');
  const id = await conversationId(visitor, server.base, 'known');

  // The list says who waits, on which page and channel, and for how long.
  await signIn(agent, server.base, AGENTS.ana);
  const item = agent.locator(`#conv-list button[data-id="${id}"]`);
  await item.waitFor({ timeout: TIMEOUT });
  assert.equal(await item.locator('.visitor-name').innerText(), 'Eve Adams');
  assert.equal(await item.locator('.visitor-email').innerText(), 'eve@example.com');
  const host = new URL(server.base).host;
  assert.equal(await item.locator('.page-url').innerText(), `${host}/widget`);
  assert.equal(await item.locator('.page-url').getAttribute('title'), `${server.base}/widget?playbook=known`);
  assert.equal(await item.locator('.channel-tag').innerText(), 'web');
  const waiting = item.locator('.waiting');
  const seconds = async () => Number(/^waiting (\d+) s$/.exec(await waiting.innerText())?.[1] ?? NaN);
  const first = await seconds();
  assert.ok(first >= 0 && first < 60, `waiting in seconds: ${await waiting.innerText()}`);
  // It counts up while the agent looks.
  await eventually(async () => (await seconds()) >= first + 2, TIMEOUT, 'the waiting time counting up');

  // The details say the same.
  await item.click();
  const card = agent.locator('#visitor');
  await expectText(card, 'Eve Adams', 'the name in the details');
  await expectText(card, 'eve@example.com', 'the email in the details');
  assert.equal(await card.getByRole('link').getAttribute('href'), `${server.base}/widget?playbook=known`);
  await expectText(card, 'waiting', 'the wait in the details');
  await agent.screenshot({ path: path.join(SCREENSHOTS, 'inbox-waiting.png') });

  // Picked up: `/pri` offers only the pricing reply; Enter puts its text in the box.
  await agent.getByRole('button', { name: 'Assign to me' }).click();
  await agent.locator(`#tab-mine[aria-selected="true"]`).waitFor({ timeout: TIMEOUT });
  const reply = agent.getByLabel('Reply');
  await eventually(async () => reply.isEnabled(), TIMEOUT, 'the reply box enabled');
  await reply.pressSequentially('/pri');
  const options = agent.getByRole('listbox', { name: 'Saved replies' }).getByRole('option');
  await eventually(async () => (await options.count()) === 1, TIMEOUT, 'one saved reply offered');
  assert.match(await options.first().innerText(), /\/pricing/);
  await reply.press('Enter');
  assert.equal(await reply.inputValue(), 'Our plans start at 49 EUR per seat and month.');
  assert.equal(await agent.getByRole('listbox', { name: 'Saved replies' }).isVisible(), false);
  await agent.evaluate(() => window.scrollTo(0, 0));
  await reply.press('Enter');
  await expectText(w.log, 'Our plans start at 49 EUR per seat and month.', 'the saved reply in the widget');

  // The menu lists them all; a click inserts one.
  await agent.getByRole('button', { name: 'Saved replies' }).click();
  await eventually(async () => (await options.count()) === 2, TIMEOUT, 'both saved replies in the menu');
  await agent.evaluate(() => window.scrollTo(0, 0));
  await agent.screenshot({ path: path.join(SCREENSHOTS, 'inbox-saved-replies.png'), fullPage: true });
  assert.equal(await options.count(), 2, 'the menu stays open');
  await options.filter({ hasText: '/demo-link' }).click();
  assert.equal(await reply.inputValue(), 'Book a demo at https://acme.example/demo');
  await reply.press('Enter');
  await expectText(w.log, 'Book a demo at https://acme.example/demo', 'the second saved reply in the widget');

  // Every record-form field fits inside the details pane's padding, at the widest and the
  // narrowest three-column width.
  for (const width of [1280, 920]) {
    await agent.setViewportSize({ width, height: 800 });
    const pane = await agent.locator('aside.card').boundingBox();
    const inner = { left: pane.x + 15, right: pane.x + pane.width - 15 };
    for (const label of ['Title', 'Value', 'Currency', 'Name', 'Email', 'Phone', 'Organization', 'Note']) {
      const box = await agent.getByLabel(label, { exact: true }).boundingBox();
      assert.ok(box.x >= inner.left && box.x + box.width <= inner.right,
        `at ${width} px, ${label} fits: ${JSON.stringify(box)} in ${JSON.stringify(inner)}`);
    }
  }
  await agent.setViewportSize({ width: 1280, height: 800 });

  await agent.getByRole('button', { name: 'Close conversation' }).click();
  await agent.locator(`#tab-closed[aria-selected="true"]`).waitFor({ timeout: TIMEOUT });
  assert.deepEqual(problems, []);
  await visitor.context().close();
  await agent.context().close();
});
