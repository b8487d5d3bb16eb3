// examples/node as a user runs them (`npm run service`, `npm run subscribe`):
// a manual status report and a probe that fails both reach the subscriber as
// health_change lines. Needs `npm install` done in examples/node
// (scripts/test.sh does it).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import { spawn } from 'node:child_process';
import { gateway, lineReader, noUnhandledRejections, until } from './helpers.mjs';

noUnhandledRejections();

const EXAMPLE = new URL('../../../examples/node/', import.meta.url).pathname;

function start(script, env) {
  const child = spawn(process.execPath, [script], {
    cwd: EXAMPLE, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'],
  });
  let err = '';
  child.stderr.on('data', (d) => { err += d; });
  return { child, readLine: lineReader(child.stdout), stderr: () => err };
}

async function stop({ child }) {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((r) => child.once('exit', r));
  process.kill(child.pid, 'SIGTERM');
  const timer = setTimeout(() => process.kill(child.pid, 'SIGKILL'), 5000);
  await exited;
  clearTimeout(timer);
}

/** A loopback port nothing listens on. */
async function closedPort() {
  const server = net.createServer();
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address();
  await new Promise((r) => server.close(r));
  return port;
}

test('the health service publishes health_change and the subscriber prints it', { timeout: 60_000 }, async () => {
  assert.ok(fs.existsSync(`${EXAMPLE}node_modules/livegate`), 'run `npm install` in examples/node first');
  const gw = await gateway({ config: null });
  const db = await closedPort();
  const subscriber = start('subscribe.mjs', { LIVEGATE_URL: gw.url });
  let service;
  try {
    // The subscriber is live before anything is published.
    await until(() => /\[connected/.test(subscriber.stderr()), 15_000, 'the subscriber to connect');
    service = start('health_service.mjs', {
      LIVEGATE_URL: gw.url, PORT: '0', INTERVAL_MS: '500', SERVICES: `db=tcp://127.0.0.1:${db}`,
    });
    const first = await service.readLine(15_000);
    const port = /health service on http:\/\/127\.0\.0\.1:(\d+)/.exec(first)?.[1];
    assert.ok(port, first);
    // The probe finds the port closed: unknown -> down.
    assert.match(await subscriber.readLine(15_000), /#1 health_change: db unknown -> down \(ECONNREFUSED\)/);
    const r = await fetch(`http://127.0.0.1:${port}/services/web/status`, {
      method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ status: 'degraded', detail: 'slow' }),
    });
    assert.equal(r.status, 200);
    assert.match(await subscriber.readLine(15_000), /#2 health_change: web unknown -> degraded \(slow\)/);
    const health = await (await fetch(`http://127.0.0.1:${port}/health`)).json();
    assert.equal(health.db.status, 'down');
    assert.equal(health.web.status, 'degraded');
    const bad = await fetch(`http://127.0.0.1:${port}/services/web/status`, { method: 'POST', body: '{"status":"sideways"}' });
    assert.equal(bad.status, 400);
  } finally {
    if (service) await stop(service);
    await stop(subscriber);
    await gw.stop();
  }
  // SIGTERM closed the subscriber's client and it exited on its own.
  assert.equal(subscriber.child.exitCode, 0, subscriber.stderr());
});
