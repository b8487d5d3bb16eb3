// Bad input gets a clear error (a TypeError for wrong types and values that
// cannot be encoded), a closed client refuses reuse, and a process exits
// whether or not its client was closed.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  ArgumentError, ClosedError, ConnectionError, Client, LivegateError, PayloadError, Publisher,
} from 'livegate';
import { gateway, noUnhandledRejections, runNode } from './helpers.mjs';

noUnhandledRejections();

const isArgument = (pattern) => (e) => e instanceof ArgumentError && e instanceof TypeError
  && e instanceof LivegateError && e.code === 'invalid' && pattern.test(e.message);

test('wrong argument types are TypeErrors that name the argument', () => {
  assert.throws(() => new Client(42), isArgument(/url must be a string, not a number/));
  assert.throws(() => new Client(), isArgument(/url must be a string, not a undefined/));
  assert.throws(() => new Client('http://127.0.0.1:1', 'ws'), isArgument(/options must be an object/));
  assert.throws(() => new Client('http://127.0.0.1:1', { transports: 'carrier-pigeon' }), isArgument(/unknown transport "carrier-pigeon"/));
  assert.throws(() => new Client('http://127.0.0.1:1', { transports: [1] }), isArgument(/transports must be an array of strings/));
  assert.throws(() => new Client('http://127.0.0.1:1', { transprots: ['ws'] }), isArgument(/unknown option "transprots"/));
  assert.throws(() => new Client('http://127.0.0.1:1', { backoff: { min: '1s' } }), isArgument(/backoff.min must be a number/));
  assert.throws(() => new Client('http://127.0.0.1:1', { backoff: { min: 500, max: 100 } }), isArgument(/backoff.max .* must not be below/));
  assert.throws(() => new Client('http://127.0.0.1:1', { encoding: 'xml' }), isArgument(/encoding must be "json" or "msgpack"/));
  assert.throws(() => new Client('http://127.0.0.1:1', { transports: [] }), isArgument(/transports is empty/));
  assert.throws(() => new Client('http://127.0.0.1:1', { connectTimeout: -1 }), isArgument(/connectTimeout must be a number of milliseconds > 0/));
  assert.throws(() => new Publisher(7), isArgument(/url must be a string/));
  assert.throws(() => new Publisher('http://127.0.0.1:1', { apiKey: 1 }), isArgument(/apiKey must be a string/));
});

test('a bad URL is refused at once', () => {
  for (const url of ['http://[zz', 'not a url', 'ftp://127.0.0.1:1']) {
    assert.throws(() => new Client(url), (e) => e instanceof ArgumentError && e.code === 'bad_url' && e.message.includes('bad gateway URL'), url);
  }
  assert.throws(() => new Publisher('http://[zz'), (e) => e instanceof ArgumentError && e.code === 'bad_url');
});

test('bad topics, events and payloads throw before anything is sent', async () => {
  const client = new Client('http://127.0.0.1:1', { transports: ['ws'] });
  try {
    assert.throws(() => client.subscribe(5), isArgument(/topic must be a string/));
    assert.throws(() => client.subscribe('bad topic!'), (e) => e instanceof ArgumentError && /topic/.test(e.message));
    assert.throws(() => client.publish('a', 1, { event: 3 }), isArgument(/event must be a string/));
    assert.throws(() => client.publish('a', 1, 'event'), isArgument(/options must be an object/));
    const payload = (pattern) => (e) => e instanceof PayloadError && e instanceof TypeError
      && e.code === 'bad_payload' && pattern.test(e.message);
    assert.throws(() => client.publish('a', { big: 10n }), payload(/BigInt cannot be encoded as JSON: convert it with Number\(x\) or String\(x\)/));
    const circular = { name: 'loop' };
    circular.self = circular;
    assert.throws(() => client.publish('a', circular), payload(/circular reference .*: publish a tree of plain values/));
    assert.throws(() => client.publish('a', undefined), payload(/a undefined cannot be published: pass a JSON-compatible value/));
    assert.throws(() => client.publish('a', () => 1), payload(/a function cannot be published/));
    assert.throws(() => client.publish('a', Symbol('s')), payload(/a symbol cannot be published/));
  } finally {
    await client.close();
  }
});

test('a closed client refuses to be reused, with a ClosedError', async () => {
  const client = new Client('http://127.0.0.1:1', { transports: ['ws'] });
  await client.close();
  await client.close(); // twice is fine
  assert.equal(client.state, 'closed');
  assert.equal(client.closed, true);
  const closed = (e) => e instanceof ClosedError && e.code === 'closed' && /create a new one/.test(e.message);
  assert.throws(() => client.subscribe('node.a'), closed);
  assert.throws(() => client.publish('node.a', 1), closed);
  await assert.rejects(client.connect(), closed);
  const publisher = new Publisher('http://127.0.0.1:1');
  publisher.close();
  assert.throws(() => publisher.publish('node.a', 1), (e) => e instanceof ClosedError);
});

test('connect() rejects with the reason when nothing listens, and the client keeps trying', async () => {
  const client = new Client('http://127.0.0.1:1', { transports: ['ws'], backoff: { min: 50, max: 100 } });
  try {
    await assert.rejects(client.connect(500), (e) => e instanceof ConnectionError && e.code === 'connect_timeout'
      && /could not connect to http:\/\/127.0.0.1:1 within 500 ms: .*refused/i.test(e.message));
    assert.notEqual(client.state, 'closed');
    assert.ok(client.lastError?.code);
  } finally {
    await client.close();
  }
});

test('a publish pending when the client closes rejects with ClosedError', async () => {
  const client = new Client('http://127.0.0.1:1', { transports: ['ws'] });
  const rejected = assert.rejects(client.publish('node.a', { n: 1 }), (e) => e instanceof ClosedError);
  await client.close();
  await rejected;
});

test('a subscription ends when its client closes (for await finishes)', async () => {
  const gw = await gateway();
  const client = new Client(gw.url, { transports: ['ws'] });
  try {
    const sub = client.subscribe('node.end');
    const loop = (async () => { for await (const _ of sub) { /* none */ } return 'done'; })();
    await new Promise((r) => sub.once('subscribed', r));
    await client.close();
    assert.equal(await loop, 'done');
  } finally {
    await gw.stop();
  }
});

/** Runs `script(url)` in a fresh node process against a fresh gateway. */
async function runAgainstGateway(script) {
  const gw = await gateway();
  try {
    return await runNode(`const { Client } = require('livegate');\n${script(JSON.stringify(gw.url))}`);
  } finally {
    await gw.stop();
  }
}

test('a process exits by itself with a client never closed', async () => {
  const r = await runAgainstGateway((url) => `
    const client = new Client(${url}, { transports: ['ws'] });
    client.on('state', (s) => { if (s.state === 'connected') console.log('connected'); });
    client.connect().then(() => client.publish('node.exit', { n: 1 })).then((ack) => console.log('ack', ack.offset));
  `);
  assert.equal(r.code, 0, r.out);
  assert.match(r.out, /ack 1/);
});

test('process.exit() with a subscription open exits at once', async () => {
  const r = await runAgainstGateway((url) => `
    const client = new Client(${url}, { transports: ['ws'] });
    const sub = client.subscribe('node.exit2');
    sub.on('subscribed', () => { console.log('live'); process.exit(3); });
  `);
  assert.equal(r.code, 3, r.out);
  assert.match(r.out, /live/);
});

test('close() lets a subscribed process exit', async () => {
  const r = await runAgainstGateway((url) => `
    const client = new Client(${url}, { transports: ['ws'] });
    client.on('state', () => {});
    (async () => {
      const sub = client.subscribe('node.exit3');
      sub.once('subscribed', () => client.close());
      for await (const _ of sub) {}
      console.log('ended');
    })();
  `);
  assert.equal(r.code, 0, r.out);
  assert.match(r.out, /ended/);
});
