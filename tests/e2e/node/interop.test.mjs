// The `ws` package as a plain client on the same gateway as livegate's Node
// client: what one publishes the other receives, in the same order, with
// the same positions (the wire is docs/protocol.md, JSON over /ws).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import WebSocket from 'ws';
import { Client } from 'livegate';
import { gateway, noUnhandledRejections, until } from './helpers.mjs';

noUnhandledRejections();

/** A plain `ws` connection speaking livegate.v1 JSON frames. */
async function plainClient(url) {
  const ws = new WebSocket(`${url.replace(/^http/, 'ws')}/ws`, 'livegate.v1.json');
  const frames = [];
  ws.on('message', (m) => frames.push(JSON.parse(m.toString())));
  await new Promise((resolve, reject) => { ws.once('open', resolve); ws.once('error', reject); });
  await until(() => frames.some((f) => f.type === 'connected'), 10_000, 'the connected frame');
  return { ws, frames, send: (f) => ws.send(JSON.stringify(f)) };
}

for (const encoding of ['json', 'msgpack']) {
  test(`livegate (${encoding}) and a plain ws client exchange publications both ways`, { timeout: 30_000 }, async () => {
    const gw = await gateway();
    const client = new Client(gw.url, { transports: ['ws'], encoding });
    const plain = await plainClient(gw.url);
    try {
      const sub = client.subscribe('node.interop');
      const got = [];
      sub.on('publication', (p) => got.push(p));
      await new Promise((r) => sub.once('subscribed', r));
      plain.send({ type: 'subscribe', id: 1, topic: 'node.interop' });
      await until(() => plain.frames.some((f) => f.type === 'subscribed' && f.id === 1), 10_000, 'plain subscribed');

      // livegate publishes; the plain client receives.
      const ack = await client.publish('node.interop', { from: 'livegate', list: [1, 2.5, 'x'] }, { event: 'hello' });
      // The plain client publishes; livegate receives.
      plain.send({ type: 'publish', id: 2, topic: 'node.interop', event: 'reply', data: { from: 'ws', nested: { ok: true } } });
      await until(() => plain.frames.some((f) => f.type === 'ack' && f.id === 2), 10_000, 'the plain ack');
      await until(() => got.length === 2, 10_000, 'both publications at livegate');
      await until(() => plain.frames.filter((f) => f.type === 'publication').length === 2, 10_000, 'both at ws');

      const seen = plain.frames.filter((f) => f.type === 'publication');
      assert.deepEqual(seen.map((f) => [f.offset, f.event, f.data]), [
        [1, 'hello', { from: 'livegate', list: [1, 2.5, 'x'] }],
        [2, 'reply', { from: 'ws', nested: { ok: true } }],
      ]);
      assert.equal(seen[0].epoch, ack.epoch);
      assert.deepEqual(got.map((p) => [p.offset, p.event, p.data, p.epoch, p.time.toISOString()]),
        seen.map((f) => [f.offset, f.event, f.data, f.epoch, f.time]));
    } finally {
      plain.ws.terminate();
      await client.close();
      await gw.stop();
    }
  });
}
