// The harness itself: it starts the binary `cargo build` made, wherever cargo put it (CI runs
// with CARGO_TARGET_DIR set, which moves it out of target/).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { BIN, binaryPath } from '../lib.mjs';

test('the binary is looked for in the target folder cargo uses', () => {
  const env = { ...process.env };
  delete env.PLAYBOOK_BIN;
  const elsewhere = path.resolve('/tmp/playbook-e2e-target-elsewhere');
  assert.equal(binaryPath({ ...env, CARGO_TARGET_DIR: elsewhere }), path.join(elsewhere, 'debug', 'playbook'));
  assert.equal(binaryPath({ ...env, PLAYBOOK_BIN: '/opt/playbook' }), '/opt/playbook');
});

test('the binary the browser tests start exists (run `cargo build` first)', () => {
  assert.ok(existsSync(BIN), `no playbook binary at ${BIN}`);
});
