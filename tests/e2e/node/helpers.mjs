// What the Node package's tests share: the real gateway (started by the
// browser suite's helper, with a config file written here), the fault
// proxy, and a guard against unhandled promise rejections.
import { after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { binaryPath, startGateway } from '../../browser/gateway.mjs';

export { publish, stats, until } from '../../browser/gateway.mjs';

// Topics under "node." accept client publishes and keep a long history;
// "tiny." keeps 3 publications, to make resumes fail on purpose; "ro." takes
// no client publishes.
export const CONFIG = `
[[namespaces]]
prefix = "node."
history_size = 1000
history_ttl_secs = 3600
client_publish = true

[[namespaces]]
prefix = "tiny."
history_size = 3
history_ttl_secs = 3600
client_publish = true

[[namespaces]]
prefix = "ro."
history_size = 10
history_ttl_secs = 3600
client_publish = false
`;

/** A config file holding `text`, in a fresh temporary directory. */
export function configFile(text) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'livegate-node-'));
  const file = path.join(dir, 'livegate.toml');
  fs.writeFileSync(file, text);
  return file;
}

/** The real gateway with CONFIG (or `config`), stopped by its pid. */
export function gateway({ config = CONFIG, args = ['--no-wt'] } = {}) {
  const extra = ['--no-system-publisher', ...args];
  if (config != null) extra.push('--config', configFile(config));
  return startGateway(extra);
}

/** The fault proxy binary built beside the gateway. */
export function faultProxyPath() {
  return path.join(path.dirname(binaryPath()), 'livegate-faultproxy');
}

/** Fails the file's tests if any promise rejection went unhandled. */
export function noUnhandledRejections() {
  const seen = [];
  const onRejection = (reason) => seen.push(reason);
  process.on('unhandledRejection', onRejection);
  after(() => {
    process.off('unhandledRejection', onRejection);
    assert.deepEqual(seen, [], 'no promise rejection may go unhandled');
  });
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Runs `node -e script` (CommonJS, `livegate` resolvable); resolves with exit code, signal, output and ms taken. */
export function runNode(script, { timeout = 20_000, env = {} } = {}) {
  const started = Date.now();
  const child = spawn(process.execPath, ['-e', script], {
    cwd: path.dirname(new URL(import.meta.url).pathname),
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout.on('data', (d) => { out += d; });
  child.stderr.on('data', (d) => { out += d; });
  return new Promise((resolve) => {
    const timer = setTimeout(() => process.kill(child.pid, 'SIGKILL'), timeout);
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, out, ms: Date.now() - started });
    });
  });
}

/** Reads lines from a child's stdout, one promise per line. */
export function lineReader(stream) {
  const lines = [];
  const waiters = [];
  createInterface({ input: stream }).on('line', (l) => {
    const w = waiters.shift();
    if (w) w(l); else lines.push(l);
  });
  return (ms = 10_000) => new Promise((resolve, reject) => {
    if (lines.length) return resolve(lines.shift());
    const timer = setTimeout(() => reject(new Error(`no line within ${ms} ms`)), ms);
    waiters.push((l) => { clearTimeout(timer); resolve(l); });
  });
}
