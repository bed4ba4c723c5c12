// Test harness: starts `playbook serve` on a free port with a temporary data folder, a config
// with two agents and a playbooks folder, and launches Debian's headless Chromium through
// playwright-core (no browser download: the system's /usr/bin/chromium is used).
import { spawn, execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, writeFileSync, copyFileSync, mkdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

/**
 * The `playbook` binary the tests start: `PLAYBOOK_BIN` if set, else the debug build in the
 * target folder cargo uses for this checkout (`target/`, or wherever `CARGO_TARGET_DIR` or a
 * cargo config puts it: cargo says, through `cargo metadata`).
 */
export function binaryPath(env = process.env) {
  if (env.PLAYBOOK_BIN) return env.PLAYBOOK_BIN;
  let target = path.join(ROOT, 'target');
  try {
    const meta = execFileSync('cargo', ['metadata', '--format-version', '1', '--no-deps', '--offline'], {
      cwd: ROOT, env, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'], maxBuffer: 64 << 20,
    });
    target = JSON.parse(meta).target_directory || target;
  } catch { /* no cargo here: the default folder */ }
  return path.join(target, 'debug', 'playbook');
}

export const BIN = binaryPath();
export const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
// The README's screenshots are refreshed only on request (`UPDATE_SCREENSHOTS=1 npm test`), so
// an ordinary run leaves the checkout clean; otherwise they go to a temporary folder.
export const SCREENSHOTS = process.env.UPDATE_SCREENSHOTS
  ? path.join(ROOT, 'docs', 'screenshots')
  : mkdtempSync(path.join(tmpdir(), 'playbook-screenshots-'));

export const AGENTS = {
  ana: 'ana-e2e-token-0123456789abcdef',
  bob: 'bob-e2e-token-0123456789abcdef',
};

const CONFIG = `
admin_token = "admin-e2e-token-0123456789"

[[agents]]
name = "ana"
token = "${AGENTS.ana}"
teams = ["Sales"]
presence = "online"

[[agents]]
name = "bob"
token = "${AGENTS.bob}"
teams = ["Sales"]
presence = "offline"

[[pools]]
name = "Inbound SDRs"
members = ["sam", "tia"]

[widget]
accent = "#0f766e"
avatar = "/avatar.svg"

[[saved_replies]]
name = "pricing"
text = "Our plans start at 49 EUR per seat and month."

[[saved_replies]]
name = "demo-link"
text = "Book a demo at https://acme.example/demo"
`;

/** Asks who the visitor is, then waits long for Sales: the inbox shows who waits. */
const KNOWN = `playbook "Known visitor" {
  bot "Kim"
  start name
}

ask name "What's your name?" expect text save name -> email

ask email "And your email?" expect email save email -> chat

livechat chat {
  online "Connecting you with sales..."
  wait 10m
  offline "Nobody is free."
  route team "Sales"
  on closed -> bye
  on offline -> bye
}

message bye "Bye!" end
`;

// A live chat nobody picks up in time: a short wait, then the offline branch asks for an email.
/** A German playbook: the widget's own words follow its `language`. */
const GERMAN = `playbook "Beratung" {
  bot "Lena"
  language de
  start welcome
}

ask welcome "Wie ist Ihre E-Mail-Adresse?" expect email save email -> bye

message bye "Danke, wir melden uns!" end
`;

const QUICK = `playbook "Quick live chat" {
  bot "Max"
  start welcome
}

question welcome "Want to talk to a person?" {
  "Yes please" -> sales
  "No thanks" -> bye
}

livechat sales {
  online "Connecting you with a person..."
  wait 3s
  offline "Sorry, nobody is free right now. Leave your email and we'll get back to you."
  route team "Sales"
  on closed -> bye
  on offline -> email
}

ask email "What's your email?" expect email save email -> lead {
  reprompt "That doesn't look like an email address. Could you check it?"
}

capture lead lead {
  title "Offline chat request"
  person email "{email}"
  owner pool "Inbound SDRs"
  source "Chatbot"
} -> thanks

message thanks "Thanks! We'll write to {email}." end qualified

message bye "Bye!" end
`;

function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

/**
 * Starts the server; resolves once it answers. `stop()` ends it and removes its folders.
 * `extraConfig` is appended to the config (e.g. a `[channels.whatsapp]` section) and `env`
 * adds to the server's environment (e.g. the variables its `token_env`s name).
 */
export async function startServer({ extraConfig = '', env = {} } = {}) {
  if (!existsSync(BIN)) {
    throw new Error(`no playbook binary at ${BIN}: run \`cargo build\` first (or set PLAYBOOK_BIN)`);
  }
  const dir = mkdtempSync(path.join(tmpdir(), 'playbook-e2e-'));
  const playbooks = path.join(dir, 'playbooks');
  const data = path.join(dir, 'data');
  mkdirSync(playbooks);
  mkdirSync(data);
  copyFileSync(path.join(ROOT, 'playbooks', 'demo.playbook'), path.join(playbooks, 'demo.playbook'));
  writeFileSync(path.join(playbooks, 'quick.playbook'), QUICK);
  writeFileSync(path.join(playbooks, 'beratung.playbook'), GERMAN);
  writeFileSync(path.join(playbooks, 'known.playbook'), KNOWN);
  const config = path.join(dir, 'playbook.toml');
  writeFileSync(config, CONFIG + extraConfig);
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  const args = ['serve', '--addr', `127.0.0.1:${port}`, '--playbooks', playbooks, '--data', data, '--config', config];
  const child = spawn(BIN, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, RUST_LOG: 'warn', ...env } });
  let output = '';
  child.stdout.on('data', (d) => { output += d; });
  child.stderr.on('data', (d) => { output += d; });
  const exited = new Promise((resolve) => child.on('exit', (code) => resolve(code)));

  const deadline = Date.now() + 15000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`playbook serve exited with ${child.exitCode}:\n${output}`);
    try {
      const r = await fetch(`${base}/api/playbooks`);
      if (r.ok) break;
    } catch { /* not listening yet */ }
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`playbook serve did not answer within 15 s:\n${output}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }

  return {
    base,
    output: () => output,
    async stop() {
      if (child.exitCode === null) {
        child.kill('SIGTERM');
        const t = setTimeout(() => child.kill('SIGKILL'), 3000);
        await exited;
        clearTimeout(t);
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/**
 * Launches headless Chromium. Playwright gives every launch a fresh, temporary
 * --user-data-dir of its own (passing one in args is refused by Playwright), so no profile
 * survives between runs.
 */
export async function launchBrowser() {
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: [
      '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
    ],
  });
}

/** A new page that fails the test on any script error or dialog (alert() must never run). */
export async function newPage(browser, problems) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  context.setDefaultTimeout(10000);
  const page = await context.newPage();
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  page.on('dialog', async (d) => {
    problems.push(`dialog opened: ${d.message()}`);
    await d.dismiss();
  });
  return page;
}

/** The widget's stored conversation id for a playbook (from localStorage). */
export async function conversationId(page, base, playbook) {
  return page.evaluate(([origin, name]) => {
    const raw = localStorage.getItem(`playbook-chat:${origin}:${name}`);
    return raw ? JSON.parse(raw).id : null;
  }, [base, playbook]);
}

/** Signs an agent in on the inbox page. */
export async function signIn(page, base, token) {
  await page.goto(`${base}/inbox`);
  await page.getByLabel('Agent token').fill(token);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.locator('#app').waitFor({ state: 'visible' });
}

export async function apiGet(base, pathname, token) {
  const r = await fetch(`${base}${pathname}`, { headers: { Authorization: `Bearer ${token}` } });
  if (!r.ok) throw new Error(`GET ${pathname}: ${r.status} ${await r.text()}`);
  return r.json();
}

/** Polls until `fn` returns something truthy (or throws after `ms`). */
export async function eventually(fn, ms = 5000, what = 'condition') {
  const deadline = Date.now() + ms;
  let last;
  for (;;) {
    try {
      last = await fn();
      if (last) return last;
    } catch (e) { last = e; }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}: ${last && last.message ? last.message : JSON.stringify(last)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}
