// Starts the real livegate binary on a free port and stops it by its pid.
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import os from 'node:os';
import path from 'node:path';

export function binaryPath() {
  if (process.env.LIVEGATE_BIN) return process.env.LIVEGATE_BIN;
  const target = process.env.CARGO_TARGET_DIR || path.join(os.homedir(), '.cache/livegate/target');
  return path.join(target, 'debug/livegate');
}

// History in memory unless the caller names a data dir (or --memory itself):
// a test gateway writes nothing into the working directory.
export async function startGateway(args = []) {
  const log = args.some((a) => a === '--memory' || a === '--data-dir') ? [] : ['--memory'];
  const child = spawn(binaryPath(), ['serve', '--listen', '127.0.0.1:0', '--log', 'warn', ...log, ...args], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const lines = createInterface({ input: child.stdout });
  const first = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('gateway did not print its address in 10 s')), 10_000);
    lines.once('line', (l) => { clearTimeout(timer); resolve(l); });
    child.once('exit', (code) => reject(new Error(`gateway exited early with ${code}`)));
  });
  const m = /^livegate listening on (http:\/\/[\d.]+:\d+)$/.exec(first);
  if (!m) throw new Error(`unexpected first line: ${first}`);
  return {
    url: m[1],
    async stop() {
      if (child.exitCode !== null) return;
      const exited = new Promise((r) => child.once('exit', r));
      process.kill(child.pid, 'SIGTERM');
      const timer = setTimeout(() => process.kill(child.pid, 'SIGKILL'), 5000);
      await exited;
      clearTimeout(timer);
    },
  };
}

export const chromiumArgs = [
  '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking',
  '--disable-component-update', '--disable-sync',
];

// A loopback TCP proxy in front of the gateway whose connections can all be
// dropped at once, the way a flaky network or proxy would.
import net from 'node:net';

export async function startProxy(targetUrl) {
  const target = new URL(targetUrl);
  const sockets = new Set();
  const server = net.createServer((client) => {
    const upstream = net.connect(Number(target.port), target.hostname);
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
      s.on('error', () => {});
    }
    client.pipe(upstream);
    upstream.pipe(client);
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${server.address().port}`,
    dropAll() { for (const s of sockets) s.destroy(); },
    close() { this.dropAll(); return new Promise((r) => server.close(r)); },
  };
}

// Publishes one JSON payload over the HTTP API; answers the gateway's
// `{topic, epoch, offset}`.
export async function publish(baseUrl, topic, data) {
  const r = await fetch(`${baseUrl}/api/publish/${topic}`, {
    method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(data),
  });
  const body = await r.text();
  if (r.status !== 200) throw new Error(`publish to ${topic} answered ${r.status}: ${body}`);
  return JSON.parse(body);
}

// The gateway's `GET /api/stats` figures.
export async function stats(baseUrl) {
  const r = await fetch(`${baseUrl}/api/stats`);
  if (r.status !== 200) throw new Error(`/api/stats answered ${r.status}`);
  return r.json();
}

// Waits until `check()` holds, polling every 50 ms; throws after `ms`.
export async function until(check, ms, what) {
  const deadline = Date.now() + ms;
  for (;;) {
    if (await check()) return;
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
