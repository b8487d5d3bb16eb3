#!/usr/bin/env node
// How many publications per second a Node process receives (and decodes)
// with the livegate package, against a plain `ws` client, on the same
// gateway, topic and payload. Performance is reported, never asserted.
//
//   node benches/node_client.mjs                         # starts $LIVEGATE_BIN (else the debug gateway)
//   node benches/node_client.mjs -t 5 --repeat 3 --size 256
//
// Uses the packages installed in tests/e2e/node (`npm ci` there builds the
// addon; LIVEGATE_NODE_PROFILE=release for a release addon, the one to measure).
//
// Each client runs alone, in its own process, one after the other:
// - `ws`: `new WebSocket(url + '/ws', 'livegate.v1.json')`, one subscribe
//   frame, every message decoded with JSON.parse and counted when it is a
//   publication (what a hand-rolled client does);
// - `livegate`: `new Client(url, { transports: ['ws'] })`,
//   `for await (const pub of client.subscribe(topic))` (each `pub.data` decoded);
// - `livegate-events`: the same with a 'publication' listener.
//
// A publisher in this process writes pre-encoded WebSocket publish frames
// back to back, never more than --max-lead publications ahead of what the
// client reported, so the client always has a backlog (it is measured at its
// own top speed) and the gateway's queue for it never overflows. Counted:
// publications received in --duration seconds from the first one, and the
// client's own CPU time (all its threads: process.cpuUsage) over that span.
import { createRequire } from 'node:module';
import { fork } from 'node:child_process';
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const here = path.dirname(fileURLToPath(import.meta.url));
const require = createRequire(path.join(here, '../tests/e2e/node/package.json'));
const WebSocket = require('ws');

const CLIENTS = ['ws', 'livegate', 'livegate-events'];
const TOPIC = 'bench.node';

// ---------------------------------------------------------------- the client side

async function runClient(kind, url, durationMs) {
  let count = 0;
  let firstAt = 0;
  let cpu0 = null;
  let reported = 0;
  let lastAt = 0;
  let finish;
  const finished = new Promise((r) => { finish = r; });
  // A client the gateway dropped (a plain `ws` client does not reconnect)
  // stops receiving: the run ends 3 s after the last publication, and says so.
  let stalled = false;
  const watchdog = setInterval(() => {
    if (count > 0 && performance.now() - lastAt > 3000) {
      stalled = true;
      finish();
    }
  }, 500);
  const onPublication = () => {
    lastAt = performance.now();
    if (count === 0) {
      firstAt = performance.now();
      cpu0 = process.cpuUsage();
    }
    count += 1;
    if (count - reported >= 500) {
      reported = count;
      process.send({ received: count });
    }
    if (performance.now() - firstAt >= durationMs) finish();
  };
  let close;
  if (kind === 'ws') {
    const ws = new WebSocket(`${url.replace(/^http/, 'ws')}/ws`, 'livegate.v1.json');
    ws.on('message', (m) => {
      const frame = JSON.parse(m.toString());
      if (frame.type === 'publication' && frame.data !== undefined) onPublication();
      else if (frame.type === 'subscribed') process.send({ ready: true });
    });
    await new Promise((r) => ws.once('open', r));
    ws.send(JSON.stringify({ type: 'subscribe', id: 1, topic: TOPIC }));
    close = () => ws.terminate();
  } else {
    const { Client } = require('livegate');
    const client = new Client(url, { transports: ['ws'] });
    const sub = client.subscribe(TOPIC);
    sub.once('subscribed', () => process.send({ ready: true }));
    if (kind === 'livegate') {
      (async () => {
        for await (const pub of sub) {
          if (pub.data !== undefined) onPublication();
        }
      })();
    } else {
      sub.on('publication', (pub) => { if (pub.data !== undefined) onPublication(); });
    }
    close = () => client.close();
  }
  await finished;
  clearInterval(watchdog);
  const cpu = process.cpuUsage(cpu0);
  const seconds = ((stalled ? lastAt : performance.now()) - firstAt) / 1000;
  if (stalled) console.error(`${kind}: no publication for 3 s after ${count}; counted up to the last one`);
  process.send({ done: { count, seconds, cpuSeconds: (cpu.user + cpu.system) / 1e6 } });
  await close();
  process.exit(0);
}

// ---------------------------------------------------------------- the driver side

async function startGateway(bin) {
  const { spawn } = await import('node:child_process');
  const config = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'livegate-bench-')), 'bench.toml');
  fs.writeFileSync(config, '[[namespaces]]\nprefix = "bench."\nhistory_size = 100\nhistory_ttl_secs = 60\nclient_publish = true\n');
  // A deep per-connection queue (as benches/python_client.py): with --max-lead
  // below it the gateway never drops a client as a slow consumer.
  const child = spawn(bin, ['serve', '--listen', '127.0.0.1:0', '--no-system-publisher', '--no-wt', '--log', 'warn', '--queue-size', '16384',
    '--config', config], { stdio: ['ignore', 'pipe', 'inherit'] });
  const first = await new Promise((resolve, reject) => {
    child.stdout.once('data', (d) => resolve(d.toString().split('\n')[0]));
    child.once('exit', (c) => reject(new Error(`gateway exited with ${c}`)));
  });
  const m = /listening on (http:\/\/\S+)/.exec(first);
  if (!m) throw new Error(`unexpected first line ${first}`);
  return { url: m[1], stop: () => new Promise((r) => { child.once('exit', r); process.kill(child.pid, 'SIGTERM'); }) };
}

async function measure(kind, url, { durationMs, size, maxLead }) {
  const child = fork(fileURLToPath(import.meta.url), ['--role', kind, '--url', url, '-t', String(durationMs / 1000)], { stdio: 'inherit' });
  let received = 0;
  let ready;
  let done;
  const isReady = new Promise((r) => { ready = r; });
  const result = new Promise((r) => { done = r; });
  let failed;
  const crashed = new Promise((_, reject) => { failed = reject; });
  child.on('message', (m) => {
    if (m.ready) ready();
    if (m.received) received = m.received;
    if (m.done) done(m.done);
  });
  child.on('exit', (code) => failed(new Error(`the ${kind} client exited with ${code} before reporting`)));
  // Never wait for ever: a run takes its duration plus a margin.
  const late = setTimeout(() => failed(new Error(`the ${kind} client did not report within ${durationMs / 1000 + 60} s`)),
    durationMs + 60_000);
  crashed.catch(() => {});
  await Promise.race([isReady, crashed]);
  // The publisher: pre-encoded publish frames as fast as the gateway takes them.
  const pub = new WebSocket(`${url.replace(/^http/, 'ws')}/ws`, 'livegate.v1.json');
  await new Promise((r) => pub.once('open', r));
  const data = { items: [], pad: '' };
  const base = JSON.stringify({ type: 'publish', topic: TOPIC, data }).length;
  data.pad = 'x'.repeat(Math.max(0, size - base));
  const frame = JSON.stringify({ type: 'publish', topic: TOPIC, data });
  let sent = 0;
  let stopped = false;
  Promise.race([result, crashed]).then(() => { stopped = true; }, () => { stopped = true; });
  while (!stopped) {
    if (sent - received < maxLead && pub.bufferedAmount < 1 << 20) {
      for (let i = 0; i < 100; i++) pub.send(frame);
      sent += 100;
    } else {
      await new Promise((r) => setImmediate(r));
    }
    if (sent % 10_000 === 0) await new Promise((r) => setImmediate(r));
  }
  pub.terminate();
  let r;
  try {
    r = await Promise.race([result, crashed]);
  } finally {
    clearTimeout(late);
    if (child.exitCode === null) child.kill('SIGKILL');
  }
  await new Promise((res) => (child.exitCode !== null || child.signalCode !== null ? res() : child.once('exit', res)));
  return { kind, pubsPerSec: r.count / r.seconds, cpuShare: r.cpuSeconds / r.seconds, pubsPerCpuSec: r.count / r.cpuSeconds, count: r.count };
}

const { values } = parseArgs({
  options: {
    role: { type: 'string' },
    url: { type: 'string' },
    bin: { type: 'string' },
    t: { type: 'string', default: '5' },
    size: { type: 'string', default: '256' },
    repeat: { type: 'string', default: '1' },
    'max-lead': { type: 'string', default: '4000' },
  },
});
const durationMs = Number(values.t) * 1000;

if (values.role) {
  await runClient(values.role, values.url, durationMs);
} else {
  const target = process.env.CARGO_TARGET_DIR || path.join(os.homedir(), '.cache/livegate/target');
  const bin = values.bin || process.env.LIVEGATE_BIN || path.join(target, 'debug/livegate');
  const gw = await startGateway(bin);
  const runs = Object.fromEntries(CLIENTS.map((c) => [c, []]));
  try {
    for (let round = 0; round < Number(values.repeat); round++) {
      for (const kind of CLIENTS) {
        const r = await measure(kind, gw.url, { durationMs, size: Number(values.size), maxLead: Number(values['max-lead']) });
        console.error(`round ${round + 1} ${kind}: ${Math.round(r.pubsPerSec)} pubs/s, ${Math.round(r.pubsPerCpuSec)} per CPU-s`);
        runs[kind].push(r);
      }
    }
  } finally {
    await gw.stop();
  }
  const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  const rows = CLIENTS.map((kind) => ({
    kind,
    pubsPerSec: median(runs[kind].map((r) => r.pubsPerSec)),
    cpuShare: median(runs[kind].map((r) => r.cpuShare)),
    pubsPerCpuSec: median(runs[kind].map((r) => r.pubsPerCpuSec)),
  }));
  const ws = rows[0];
  console.log(`gateway ${bin}, ${values.size}-byte JSON publications, ${values.t} s per run, median of ${values.repeat}`);
  console.log('| client | pubs/s | vs ws | client CPU | pubs per client CPU-second | vs ws |');
  console.log('|---|---|---|---|---|---|');
  for (const r of rows) {
    console.log(`| ${r.kind} | ${Math.round(r.pubsPerSec).toLocaleString('en')} | ${(r.pubsPerSec / ws.pubsPerSec).toFixed(2)}x | `
      + `${Math.round(r.cpuShare * 100)}% | ${Math.round(r.pubsPerCpuSec).toLocaleString('en')} | ${(r.pubsPerCpuSec / ws.pubsPerCpuSec).toFixed(2)}x |`);
  }
}
