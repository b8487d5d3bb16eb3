// The browser package (bindings-wasm/pkg, built by bindings-wasm/build.sh)
// in headless Chromium against the real gateway: subscribe and publish over
// each transport, fallback when one is refused, resume after the
// connections drop, and bad input.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import { existsSync, mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { chromium } from 'playwright-core';
import { startGateway, chromiumArgs, publish, until } from './gateway.mjs';
import { startPageServer, pkgDir } from '../../bindings-wasm/dev/serve.mjs';

if (!existsSync(path.join(pkgDir, 'index.js'))) {
  throw new Error(`${pkgDir} is missing: run bindings-wasm/build.sh first`);
}

// Pages publish over WebSocket and WebTransport on `room.` topics.
const configDir = mkdtempSync(path.join(os.tmpdir(), 'livegate-wasm-'));
const configFile = path.join(configDir, 'gateway.toml');
writeFileSync(configFile, '[[namespaces]]\nprefix = "room."\nclient_publish = true\n');
process.on('exit', () => rmSync(configDir, { recursive: true, force: true }));

// A gateway, the page server in front of it and a page of the package.
async function withPage(gatewayArgs, body) {
  const gw = await startGateway(['--no-system-publisher', '--config', configFile, ...gatewayArgs]);
  const server = await startPageServer(gw.url);
  const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: chromiumArgs });
  try {
    const page = await browser.newPage();
    const pageErrors = [];
    page.on('pageerror', (e) => pageErrors.push(String(e)));
    await page.goto(server.url + '/test.html');
    await page.waitForFunction(() => window.ready === true, null, { timeout: 10_000 });
    await body({ page, gw, server, pageErrors });
    assert.deepEqual(pageErrors, [], 'no exception escaped into the page');
  } finally {
    await browser.close();
    await server.close();
    await gw.stop();
  }
}

// In the page: a client recording its state changes, errors and `recovered`
// events, and one subscription recording what it receives.
function openClient({ options, topic }) {
  const { Client } = window.livegate;
  const rec = { states: [], errors: [], recovered: [], got: [], subscribed: 0, acks: [] };
  window.rec = rec;
  const client = new Client('/', options);
  window.client = client;
  client.on('state', (s) => rec.states.push(`${s.to}:${s.reason}${s.transport ? ':' + s.transport : ''}`));
  client.on('error', (e) => rec.errors.push(e.code));
  client.on('recovered', (r) => rec.recovered.push(r.recovered));
  const sub = client.subscribe(topic, { onSubscribed: () => { rec.subscribed += 1; } });
  (async () => {
    for await (const p of sub) rec.got.push(p.data.n);
  })();
}

const waitIn = (page, fn, arg, what, timeout = 20_000) =>
  page.waitForFunction(fn, arg, { timeout, polling: 50 }).catch((e) => {
    throw new Error(`timed out waiting for ${what}: ${e.message}`);
  });

const range = (from, to) => Array.from({ length: to - from + 1 }, (_, i) => from + i);

async function roundTrip(page, gw, transport) {
  const topic = `room.${transport}`;
  await page.evaluate(openClient, {
    topic,
    options: { transports: [transport], encoding: 'json', pollTimeoutMs: 2000, connectTimeoutMs: 5000 },
  });
  await waitIn(page, () => window.rec.subscribed === 1 || window.client.transport === 'sse' || window.client.transport === 'poll',
    null, `${transport} to connect`);
  // Two publishes from the page (over the connection or HTTP, as the
  // engine decides), one from a server over the HTTP API.
  const acks = await page.evaluate(async (t) => [
    await window.client.publish(t, { n: 1 }),
    await window.client.publish(t, { n: 2 }, { event: 'e' }),
  ], topic);
  assert.deepEqual(acks.map((a) => a.offset), [1, 2]);
  await publish(gw.url, topic, { n: 3 });
  await waitIn(page, () => window.rec.got.length >= 3, null, `3 publications over ${transport}`);
  const rec = await page.evaluate(() => window.rec);
  assert.deepEqual(rec.got, [1, 2, 3]);
  assert.equal(await page.evaluate(() => window.client.transport), transport);
  assert.equal(rec.states[0], 'connecting:app_connect');
  assert.ok(rec.states.includes(`connected:opened:${transport}`), rec.states.join(' '));
  await page.evaluate(() => window.client.close());
  assert.equal(await page.evaluate(() => window.client.state), 'closed');
}

for (const transport of ['ws', 'sse', 'poll']) {
  test(`subscribe and publish over ${transport} alone`, { timeout: 60_000 }, async () => {
    await withPage(['--no-wt'], ({ page, gw }) => roundTrip(page, gw, transport));
  });
}

test('subscribe and publish over WebTransport, pinned through /wt/cert-hash', { timeout: 60_000 }, async () => {
  await withPage([], ({ page, gw }) => roundTrip(page, gw, 'wt'));
});

test('falls back from wt and a refused ws to sse, then upgrades back to ws', { timeout: 60_000 }, async () => {
  await withPage(['--no-wt'], async ({ page, gw, server }) => {
    server.block('ws');
    await page.evaluate(openClient, {
      topic: 'fall',
      options: { encoding: 'json', upgradeProbeMs: 1500, backoffMinMs: 100, backoffMaxMs: 500 },
    });
    await waitIn(page, () => window.client.transport === 'sse' && window.rec.subscribed === 1, null, 'sse');
    const early = await page.evaluate(() => window.rec.errors);
    assert.ok(early.filter((c) => c === 'transport_failed').length >= 2, `wt and ws failed: ${early}`);
    for (const n of [1, 2]) await publish(gw.url, 'fall', { n });
    await waitIn(page, () => window.rec.got.length >= 2, null, 'publications over sse');
    server.unblock('ws');
    await waitIn(page, () => window.client.transport === 'ws', null, 'the upgrade back to ws');
    for (const n of [3, 4]) await publish(gw.url, 'fall', { n });
    await waitIn(page, () => window.rec.got.length >= 4, null, 'publications over ws');
    const rec = await page.evaluate(() => window.rec);
    assert.deepEqual(rec.got, range(1, 4), 'nothing lost or repeated across the switch');
    assert.ok(rec.states.includes('reconnecting:upgrade_probe:sse'), rec.states.join(' '));
    assert.ok(rec.recovered.every((r) => r === true), `recovered: ${rec.recovered}`);
  });
});

test('falls back to ws when WebTransport\'s UDP packets are dropped (connect timeout)', { timeout: 60_000 }, async () => {
  // A UDP socket that reads and never answers, as a firewall dropping QUIC.
  const sink = dgram.createSocket('udp4');
  let packets = 0;
  sink.on('message', () => { packets += 1; });
  await new Promise((r) => sink.bind(0, '127.0.0.1', r));
  try {
    const advertised = `https://127.0.0.1:${sink.address().port}/wt`;
    await withPage(['--wt-advertise', advertised], async ({ page, gw }) => {
      await page.evaluate(openClient, { topic: 'room.silent', options: { encoding: 'json', connectTimeoutMs: 2000 } });
      await waitIn(page, () => window.client.transport === 'ws' && window.rec.subscribed === 1, null, 'ws');
      await publish(gw.url, 'room.silent', { n: 1 });
      await waitIn(page, () => window.rec.got.length === 1, null, 'a publication over ws');
      const rec = await page.evaluate(() => window.rec);
      assert.ok(rec.errors.includes('connect_timeout'), `errors: ${rec.errors}`);
    });
    assert.ok(packets > 0, 'WebTransport was tried (QUIC packets reached the silent port)');
  } finally {
    sink.close();
  }
});

for (const transport of ['ws', 'sse', 'poll']) {
  test(`resumes over ${transport} after the connections drop`, { timeout: 60_000 }, async () => {
    await withPage(['--no-wt'], async ({ page, gw, server }) => {
      await page.evaluate(openClient, {
        topic: 'resume',
        options: { transports: [transport], encoding: 'json', pollTimeoutMs: 2000, backoffMinMs: 200, backoffMaxMs: 400 },
      });
      await waitIn(page, () => window.rec.subscribed === 1, null, 'subscribed');
      for (const n of [1, 2, 3]) await publish(gw.url, 'resume', { n });
      await waitIn(page, () => window.rec.got.length >= 3, null, 'the first publications');
      // Cut off (a browser silently retries a GET whose kept-alive socket
      // closed, so the transport is refused too until the publications below
      // are in), then let through again: they are replayed on resume.
      server.block(transport);
      server.dropAll();
      await waitIn(page, () => window.client.state === 'reconnecting', null, 'reconnecting');
      for (const n of [4, 5, 6]) await publish(gw.url, 'resume', { n });
      server.unblock(transport);
      await waitIn(page, () => window.rec.got.length >= 6 && window.client.state === 'connected', null, 'resume');
      for (const n of [7]) await publish(gw.url, 'resume', { n });
      await waitIn(page, () => window.rec.got.length >= 7, null, 'the publication after resume');
      const rec = await page.evaluate(() => window.rec);
      assert.deepEqual(rec.got, range(1, 7));
      assert.ok(rec.states.some((s) => s.startsWith('reconnecting:')), rec.states.join(' '));
      // A long-poll resume with a recoverable cursor has no `subscribed`
      // frame (docs/protocol.md 4.3), so no `recovered` event either.
      if (transport !== 'poll') assert.ok(rec.recovered.length >= 1, 'a recovered event');
      assert.ok(rec.recovered.every((r) => r === true), `recovered: ${rec.recovered}`);
    });
  });
}

test('subscribe since a kept position replays what came after it', { timeout: 60_000 }, async () => {
  await withPage(['--no-wt'], async ({ page, gw }) => {
    let pos;
    for (const n of [1, 2, 3, 4]) pos = await publish(gw.url, 'kept', { n });
    const got = await page.evaluate(async ({ epoch }) => {
      const client = new window.livegate.Client('/', { transports: ['ws'], encoding: 'json' });
      const sub = client.subscribe('kept', { since: { epoch, offset: 2 } });
      const out = [];
      for await (const p of sub) {
        out.push(p.data.n);
        if (out.length === 2) break;
      }
      await client.close();
      return out;
    }, pos);
    assert.deepEqual(got, [3, 4]);
  });
});

test('bad input: clear errors, never an exception in the page or a tight reconnect loop', { timeout: 60_000 }, async () => {
  await withPage(['--no-wt'], async ({ page, server }) => {
    const errors = await page.evaluate(async () => {
      const { Client } = window.livegate;
      const codeOf = (fn) => { try { fn(); return 'no error'; } catch (e) { return `${e.name}:${e.code}:${e.message}`; } };
      const out = {
        url: codeOf(() => new Client('ftp://example')),
        transport: codeOf(() => new Client('/', { transports: ['udp'] })),
        field: codeOf(() => new Client('/', { trasnports: ['ws'] })),
      };
      const client = new Client('/', { transports: ['ws'] });
      out.topic = codeOf(() => client.subscribe('no spaces allowed'));
      out.since = codeOf(() => client.subscribe('ok', { since: { epoch: 'e' } }));
      out.listener = codeOf(() => client.on('nope', () => {}));
      out.payload = await client.publish('ok', undefined).then(() => 'no error', (e) => e.code);
      await client.close();
      out.closed = await client.publish('ok', 1).then(() => 'no error', (e) => e.code);
      return out;
    });
    assert.match(errors.url, /^LivegateError:bad_url:/);
    assert.match(errors.transport, /^LivegateError:invalid:.*unknown transport "udp"/);
    assert.match(errors.field, /^LivegateError:invalid:.*unknown field/);
    assert.match(errors.topic, /^LivegateError:invalid:.*topic/);
    assert.match(errors.since, /^LivegateError:invalid:.*since/);
    assert.match(errors.listener, /^LivegateError:invalid:/);
    assert.equal(errors.payload, 'bad_payload');
    assert.equal(errors.closed, 'closed');

    // Garbage on the event stream: error events and reconnects with backoff.
    server.garbageSse = true;
    await page.evaluate(openClient, {
      topic: 'garbage', options: { transports: ['sse'], backoffMinMs: 200, backoffMaxMs: 400 },
    });
    await new Promise((r) => setTimeout(r, 2000));
    const rec = await page.evaluate(() => { window.client.close(); return window.rec; });
    assert.ok(rec.errors.includes('protocol_error'), `errors: ${rec.errors}`);
    assert.ok(server.counts.sse >= 2, `it tried again (${server.counts.sse} attempts)`);
    assert.ok(server.counts.sse <= 12, `backoff, not a tight loop (${server.counts.sse} attempts in 2 s)`);
  });
});

test('React: useTopic and useConnectionState render live values', { timeout: 60_000 }, async () => {
  const here = path.dirname(new URL(import.meta.url).pathname);
  const gw = await startGateway(['--no-system-publisher', '--no-wt']);
  const server = await startPageServer(gw.url, {
    dirs: [['/react/', path.join(here, 'react')], ['/node_modules/', path.join(here, 'node_modules')]],
  });
  const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: chromiumArgs });
  try {
    const page = await browser.newPage();
    const pageErrors = [];
    page.on('pageerror', (e) => pageErrors.push(String(e)));
    await page.goto(server.url + '/react/index.html');
    await waitIn(page, () => document.querySelector('#state')?.textContent === 'connected', null, 'connected');
    assert.equal(await page.textContent('#transport'), 'ws');
    // Publish until the subscription shows one (it is live from then on),
    // then three more: the last three are kept.
    let n = 0;
    await until(async () => {
      n += 1;
      await publish(gw.url, 'room.react', { n });
      return (await page.textContent('#last')) !== '';
    }, 10_000, 'the first value');
    for (const k of [1, 2, 3]) await publish(gw.url, 'room.react', { n: n + k });
    await waitIn(page, (last) => document.querySelector('#last')?.textContent === last, String(n + 3), 'the last value');
    assert.equal(await page.textContent('#items'), `${n + 1},${n + 2},${n + 3}`);
    assert.equal(await page.textContent('#recovered'), 'null');
    // The gateway drops the connection: the hooks show it and the resume.
    server.dropAll();
    await waitIn(page, () => document.querySelector('#recovered')?.textContent === 'true', null, 'recovered');
    await waitIn(page, () => document.querySelector('#state')?.textContent === 'connected', null, 'connected again');
    assert.deepEqual(pageErrors, []);
  } finally {
    await browser.close();
    await server.close();
    await gw.stop();
  }
});
