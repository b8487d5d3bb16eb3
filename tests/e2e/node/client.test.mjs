// The client against the real gateway: subscribe as an async iterable and
// as an EventEmitter, publish with acks, offline queue, resume, Publisher.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Client, Publisher, ProtocolError } from 'livegate';
import { spawn } from 'node:child_process';
import { binaryPath } from '../../browser/gateway.mjs';
import { CONFIG, configFile, gateway, noUnhandledRejections, publish, sleep, until } from './helpers.mjs';

noUnhandledRejections();

for (const transports of [['ws'], ['sse'], ['poll']]) {
  for (const encoding of transports[0] === 'ws' ? ['json', 'msgpack'] : ['json']) {
    test(`subscribe and publish over ${transports} (${encoding})`, { timeout: 30_000 }, async () => {
      const gw = await gateway();
      const client = new Client(gw.url, { transports, encoding });
      try {
        await client.connect();
        assert.equal(client.state, 'connected');
        assert.equal(client.transport, transports[0]);
        const sub = client.subscribe('node.basic');
        assert.equal(sub.topic, 'node.basic');
        const subscribed = new Promise((r) => sub.once('subscribed', r));
        const received = [];
        const reading = (async () => {
          for await (const p of sub) {
            received.push(p);
            if (received.length === 4) break;
          }
        })();
        const s = await subscribed;
        assert.equal(s.topic, 'node.basic');
        const ack = await client.publish('node.basic', { n: 1, text: 'héllo', list: [1.5, null, true] }, { event: 'health_change' });
        assert.equal(ack.topic, 'node.basic');
        assert.equal(ack.offset, 1);
        assert.match(ack.msgId, /./);
        await client.publish('node.basic', Buffer.from([0, 1, 2, 255]));
        await client.publish('node.basic', 'text');
        await publish(gw.url, 'node.basic', { over: 'http' });
        await reading;
        assert.deepEqual(received.map((p) => p.offset), [1, 2, 3, 4]);
        assert.deepEqual(received[0].data, { n: 1, text: 'héllo', list: [1.5, null, true] });
        assert.equal(received[0].event, 'health_change');
        assert.equal(received[0].epoch, ack.epoch);
        assert.ok(received[0].time instanceof Date);
        assert.ok(Math.abs(received[0].time.getTime() - Date.now()) < 60_000);
        assert.deepEqual(received[1].data, Buffer.from([0, 1, 2, 255]));
        assert.equal(received[2].data, 'text');
        assert.equal(received[3].event, null);
        // Breaking out of the loop closed the subscription.
        assert.equal(sub.closed, true);
      } finally {
        await client.close();
        await gw.stop();
      }
    });
  }
}

test('a subscription is an EventEmitter; state changes reach client.on("state")', { timeout: 30_000 }, async () => {
  const gw = await gateway();
  const client = new Client(gw.url, { transports: ['ws'] });
  const states = [];
  client.on('state', (s) => states.push([s.state, s.transport]));
  try {
    const sub = client.subscribe('node.events');
    const got = [];
    sub.on('publication', (p) => got.push(p.data.n));
    await new Promise((r) => sub.once('subscribed', r));
    for (let n = 1; n <= 50; n++) client.publish('node.events', { n });
    await until(() => got.length === 50, 10_000, '50 publications');
    assert.deepEqual(got, Array.from({ length: 50 }, (_, i) => i + 1));
    assert.deepEqual(states.slice(0, 2), [['connecting', null], ['connected', 'ws']]);
    const ended = new Promise((r) => sub.once('end', r));
    sub.close();
    await ended;
  } finally {
    await client.close();
    await gw.stop();
  }
  assert.deepEqual(states.at(-1), ['closed', null]);
});

test('publishes made while offline wait in the queue and land once, in order', { timeout: 30_000 }, async () => {
  // A free port: a gateway picks one, then stops.
  const probe = await gateway();
  const port = new URL(probe.url).port;
  await probe.stop();
  const client = new Client(probe.url, { transports: ['ws'], backoff: { min: 50, max: 200 } });
  try {
    const acks = [1, 2, 3].map((n) => client.publish('node.offline', { n }));
    await sleep(300);
    assert.notEqual(client.state, 'connected');
    const gw = await startFixed(port);
    try {
      const done = await Promise.all(acks);
      assert.deepEqual(done.map((a) => a.offset), [1, 2, 3]);
      const history = await (await fetch(`${probe.url}/api/topics/node.offline/history`)).json();
      assert.deepEqual(history.publications.map((p) => p.data.n), [1, 2, 3]);
    } finally {
      await gw.stop();
    }
  } finally {
    await client.close();
  }
});

/** The gateway on a given port (for clients that keep retrying one address). */
async function startFixed(port) {
  const child = spawn(binaryPath(), ['serve', '--listen', `127.0.0.1:${port}`, '--log', 'warn',
    '--no-system-publisher', '--no-wt', '--memory', '--config', configFile(CONFIG)], { stdio: ['ignore', 'pipe', 'inherit'] });
  await new Promise((resolve, reject) => {
    child.stdout.once('data', resolve);
    child.once('exit', (c) => reject(new Error(`gateway exited with ${c}`)));
  });
  return {
    async stop() {
      if (child.exitCode !== null) return;
      const exited = new Promise((r) => child.once('exit', r));
      process.kill(child.pid, 'SIGTERM');
      await exited;
    },
  };
}

test('a resume the history cannot cover says recovered: false', { timeout: 30_000 }, async () => {
  const gw = await gateway();
  const port = new URL(gw.url).port;
  const client = new Client(gw.url, { transports: ['ws'], backoff: { min: 50, max: 200 } });
  try {
    const sub = client.subscribe('tiny.gap');
    const got = [];
    sub.on('publication', (p) => got.push(p.data.n));
    await new Promise((r) => sub.once('subscribed', r));
    await publish(gw.url, 'tiny.gap', { n: 1 });
    await until(() => got.length === 1, 10_000, 'first publication');
    await gw.stop();
    const recovered = new Promise((r) => sub.once('recovered', r));
    const fixed = await startFixed(port);
    try {
      const r = await recovered;
      // A restarted in-memory gateway has new epochs: the gap is lost for good.
      assert.equal(r.recovered, false);
      assert.equal(r.topic, 'tiny.gap');
    } finally {
      await fixed.stop();
    }
  } finally {
    await client.close();
  }
});

test('a publish the namespace refuses rejects with the gateway code', { timeout: 30_000 }, async () => {
  const gw = await gateway();
  const client = new Client(gw.url, { transports: ['ws'] });
  try {
    await client.connect();
    await assert.rejects(client.publish('ro.x', { n: 1 }), (e) => e instanceof ProtocolError && e.code === 'publish_forbidden');
  } finally {
    await client.close();
    await gw.stop();
  }
});

test('Publisher publishes over HTTP with the API key', { timeout: 30_000 }, async () => {
  const gw = await gateway({ args: ['--no-wt', '--api-key', 's3cret'] });
  try {
    const client = new Client(gw.url, { transports: ['ws'], token: 's3cret' });
    const sub = client.subscribe('node.pub');
    const got = [];
    sub.on('publication', (p) => got.push([p.event, p.data]));
    await new Promise((r) => sub.once('subscribed', r));
    const publisher = new Publisher(gw.url, { apiKey: 's3cret' });
    const ack = await publisher.publish('node.pub', { service: 'db', status: 'down' }, { event: 'health_change' });
    assert.equal(ack.offset, 1);
    await until(() => got.length === 1, 10_000, 'the publication');
    assert.deepEqual(got[0], ['health_change', { service: 'db', status: 'down' }]);
    const wrong = new Publisher(gw.url, { apiKey: 'nope' });
    await assert.rejects(wrong.publish('node.pub', 1), (e) => e instanceof ProtocolError && typeof e.code === 'string' && e.code.length > 0);
    await client.close();
  } finally {
    await gw.stop();
  }
});
