// WebTransport (`/wt`, HTTP/3 over QUIC) in Chromium's own WebTransport API,
// against the real gateway: the control stream, a unidirectional stream per
// topic, resume with `since`, and a page's fallback to WebSocket when the UDP
// port does not answer.
import { test } from 'node:test';
import dgram from 'node:dgram';
import assert from 'node:assert/strict';
import { chromium } from 'playwright-core';
import { startGateway, chromiumArgs, publish, stats, until } from './gateway.mjs';

// Installed in the page as `window.lg`: the length-prefixed framing and a
// WebTransport session opened the way docs/protocol.md describes it.
function installPageLib() {
  const enc = new TextEncoder();
  const dec = new TextDecoder('utf-8', { fatal: true });
  const lg = {};

  // One frame: a 4-byte big-endian length, then the JSON frame in UTF-8.
  lg.frame = (obj) => {
    const body = enc.encode(JSON.stringify(obj));
    const out = new Uint8Array(4 + body.length);
    new DataView(out.buffer).setUint32(0, body.length, false);
    out.set(body, 4);
    return out;
  };

  // Incremental reader: chunks may split a frame or hold several.
  // Empty frames are heartbeats: counted, not returned.
  lg.FrameReader = class {
    constructor() { this.buf = new Uint8Array(0); this.heartbeats = 0; }
    push(chunk) {
      const all = new Uint8Array(this.buf.length + chunk.length);
      all.set(this.buf, 0);
      all.set(chunk, this.buf.length);
      const view = new DataView(all.buffer);
      const frames = [];
      let pos = 0;
      while (all.length - pos >= 4) {
        const len = view.getUint32(pos, false);
        if (all.length - pos - 4 < len) break;
        if (len === 0) this.heartbeats += 1;
        else frames.push(JSON.parse(dec.decode(all.subarray(pos + 4, pos + 4 + len))));
        pos += 4 + len;
      }
      this.buf = all.slice(pos);
      return frames;
    }
  };

  // Reads a ReadableStream of Uint8Array chunks to its end, frame by frame.
  lg.readFrames = async (readable, onFrame, onHeartbeats = () => {}) => {
    const reader = readable.getReader();
    const frames = new lg.FrameReader();
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return { leftover: frames.buf.length, heartbeats: frames.heartbeats };
      for (const f of frames.push(value)) onFrame(f);
      onHeartbeats(frames.heartbeats);
    }
  };

  lg.hexToBytes = (hex) => {
    if (!/^[0-9a-f]{64}$/i.test(hex)) throw new Error(`not a sha-256 hex digest: ${hex}`);
    const out = new Uint8Array(hex.length / 2);
    for (let i = 0; i < out.length; i++) out[i] = parseInt(hex.slice(2 * i, 2 * i + 2), 16);
    return out;
  };

  lg.certHash = async () => {
    const r = await fetch('/wt/cert-hash');
    if (!r.ok) throw new Error(`/wt/cert-hash answered ${r.status}`);
    return r.json();
  };

  lg.newWebTransport = (info) => new WebTransport(`${info.url}?encoding=json`, {
    serverCertificateHashes: [{ algorithm: 'sha-256', value: lg.hexToBytes(info.hash) }],
  });

  // Opens a session and records into `window.sessions[name]`:
  // `control` (frames on the control stream), `subscribed` and `got`
  // (frames on the topic streams, each with the index of its stream in the
  // order the gateway opened them), `errors`.
  lg.open = async (name) => {
    window.sessions = window.sessions || {};
    const s = { control: [], heartbeats: 0, subscribed: [], got: [], errors: [], streams: 0, closing: false };
    window.sessions[name] = s;
    const fail = (where) => (e) => { if (!s.closing) s.errors.push(`${where}: ${e && e.name}: ${e && e.message}`); };
    const info = await lg.certHash();
    const wt = lg.newWebTransport(info);
    wt.closed.then((c) => { s.closedInfo = c; }, fail('closed'));
    await wt.ready;
    const control = await wt.createBidirectionalStream();
    const writer = control.writable.getWriter();
    lg.readFrames(control.readable, (f) => s.control.push(f), (n) => { s.heartbeats = n; })
      .then((end) => { s.controlEnd = end; }, fail('control stream'));
    (async () => {
      const incoming = wt.incomingUnidirectionalStreams.getReader();
      for (;;) {
        const { value, done } = await incoming.read();
        if (done) return;
        const index = s.streams++;
        lg.readFrames(value, (f) => {
          if (f.type === 'subscribed') s.subscribed.push({ stream: index, ...f });
          else if (f.type === 'publication') s.got.push({ stream: index, topic: f.topic, epoch: f.epoch, offset: f.offset, data: f.data });
          else s.errors.push(`unexpected frame on topic stream ${index}: ${JSON.stringify(f)}`);
        }).catch(fail(`topic stream ${index}`));
      }
    })().catch(fail('incoming streams'));
    lg.handles = lg.handles || {};
    const handle = {
      wt,
      writer,
      send: (...frames) => {
        const parts = frames.map(lg.frame);
        const all = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
        let pos = 0;
        for (const p of parts) { all.set(p, pos); pos += p.length; }
        return writer.write(all);
      },
      writeRaw: (bytes) => writer.write(bytes),
      close: async () => {
        s.closing = true;
        wt.close({ closeCode: 0, reason: 'test done' });
        await wt.closed.catch(() => {});
      },
    };
    lg.handles[name] = handle;
    return handle;
  };

  window.lg = lg;
}

async function withBrowser(gw, body) {
  // Playwright gives every launch a fresh temporary profile (--user-data-dir).
  const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: chromiumArgs });
  try {
    const page = await browser.newPage();
    const consoleErrors = [];
    page.on('pageerror', (e) => consoleErrors.push(String(e)));
    await page.goto(gw.url + '/health');
    await page.evaluate(installPageLib);
    await body(page, consoleErrors);
  } finally {
    await browser.close();
  }
}

const offsets = (from, to) => Array.from({ length: to - from + 1 }, (_, i) => from + i);

test('WebTransport in Chromium receives publications made over HTTP', { timeout: 60_000 }, async () => {
  // Short heartbeats: empty frames flow on the control stream during the test.
  const gw = await startGateway(['--no-system-publisher', '--heartbeat-ms', '300']);
  try {
    const hash = await (await fetch(`${gw.url}/wt/cert-hash`)).json();
    assert.equal(hash.algorithm, 'sha-256');
    assert.match(hash.url, /^https:\/\/127\.0\.0\.1:\d+\/wt$/);
    assert.match(hash.hash, /^[0-9a-f]{64}$/);

    await withBrowser(gw, async (page, pageErrors) => {
      // The page's frame reader, on frames cut at every byte and all in one chunk.
      const selfCheck = await page.evaluate(() => {
        const { frame, FrameReader } = window.lg;
        const parts = [frame({ type: 'a', s: 'é€😀' }), new Uint8Array(4), frame({ type: 'b', n: 1 })];
        const bytes = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
        let pos = 0;
        for (const p of parts) { bytes.set(p, pos); pos += p.length; }
        const byByte = new FrameReader();
        const one = [];
        for (const b of bytes) one.push(...byByte.push(new Uint8Array([b])));
        const whole = new FrameReader();
        return { one, all: whole.push(bytes), heartbeats: [byByte.heartbeats, whole.heartbeats], left: [byByte.buf.length, whole.buf.length] };
      });
      const expected = [{ type: 'a', s: 'é€😀' }, { type: 'b', n: 1 }];
      assert.deepEqual(selfCheck, { one: expected, all: expected, heartbeats: [1, 1], left: [0, 0] });

      await page.evaluate(async () => {
        const s = await window.lg.open('main');
        // Both subscribes in one write: the gateway must split them.
        await s.send(
          { type: 'subscribe', id: 1, topic: 'browser.wt.a' },
          { type: 'subscribe', id: 2, topic: 'browser.wt.b' },
        );
        // A ping cut in two writes: the gateway must join it.
        const ping = window.lg.frame({ type: 'ping', id: 3 });
        await s.writeRaw(ping.slice(0, 3));
        await new Promise((r) => setTimeout(r, 50));
        await s.writeRaw(ping.slice(3));
      });
      await page.waitForFunction(() => {
        const s = window.sessions.main;
        return s.errors.length > 0 || (s.subscribed.length === 2 && s.control.some((f) => f.type === 'pong'));
      }, null, { timeout: 10_000 });
      let s = await page.evaluate(() => window.sessions.main);
      assert.deepEqual(s.errors, []);
      assert.equal(s.control[0].type, 'connected', `first control frame: ${JSON.stringify(s.control[0])}`);
      assert.equal(typeof s.control[0].client_id, 'string');
      assert.equal(typeof s.control[0].heartbeat_ms, 'number');
      assert.deepEqual(s.control.slice(1), [{ type: 'pong', id: 3 }]);
      const subA = s.subscribed.find((f) => f.topic === 'browser.wt.a');
      const subB = s.subscribed.find((f) => f.topic === 'browser.wt.b');
      assert.ok(subA && subB, `subscribed frames: ${JSON.stringify(s.subscribed)}`);
      assert.equal(subA.id, 1);
      assert.equal(subB.id, 2);
      assert.deepEqual([subA.offset, subA.publications, subB.offset, subB.publications], [0, [], 0, []]);
      assert.notEqual(subA.stream, subB.stream, 'each topic has its own stream');
      assert.equal((await stats(gw.url)).connections.wt, 1);

      for (let n = 1; n <= 20; n++) {
        await publish(gw.url, 'browser.wt.a', { topic: 'a', n });
        await publish(gw.url, 'browser.wt.b', { topic: 'b', n });
      }
      await page.waitForFunction(() => {
        const s = window.sessions.main;
        return s.errors.length > 0 || s.got.length >= 40;
      }, null, { timeout: 15_000 });
      await page.waitForTimeout(300); // nothing beyond the 40
      s = await page.evaluate(() => window.sessions.main);
      assert.deepEqual(s.errors, []);
      assert.equal(s.got.length, 40);
      for (const [topic, short, sub] of [['browser.wt.a', 'a', subA], ['browser.wt.b', 'b', subB]]) {
        const mine = s.got.filter((p) => p.topic === topic);
        assert.deepEqual(mine.map((p) => p.offset), offsets(1, 20), `${topic} offsets in order`);
        assert.deepEqual(mine.map((p) => p.data), offsets(1, 20).map((n) => ({ topic: short, n })));
        assert.ok(mine.every((p) => p.stream === sub.stream), `${topic} publications all on its subscribed stream ${sub.stream}`);
        assert.ok(mine.every((p) => p.epoch === mine[0].epoch), `${topic} one epoch`);
      }
      assert.equal(s.streams, 2, 'two topic streams, no more');
      assert.ok(s.heartbeats > 0, 'heartbeats (empty frames) arrived on the control stream and were skipped');
      assert.deepEqual(s.control.slice(1), [{ type: 'pong', id: 3 }], 'nothing but heartbeats on the control stream after the pong');
      assert.deepEqual(pageErrors, []);
      await page.evaluate(() => window.lg.handles.main.close());
      await until(async () => (await stats(gw.url)).connections.wt === 0, 5_000, 'the gateway to see the session close');
    });
  } finally {
    await gw.stop();
  }
});

// The page's own connection code tries WebTransport first (3 s for `ready`),
// then WebSocket; `advertised` is the URL /wt/cert-hash announces.
async function fallbackCase(t, advertised, topic) {
  const gw = await startGateway(['--no-system-publisher', '--wt-advertise', advertised]);
  try {
    await withBrowser(gw, async (page, pageErrors) => {
      await page.evaluate((topic) => {
        window.transport = null;
        window.wtError = null;
        window.got = [];
        window.subscribed = null;
        window.failure = null;
        const viaWebTransport = async () => {
          const info = await window.lg.certHash();
          window.advertised = info.url;
          const wt = window.lg.newWebTransport(info);
          wt.closed.catch(() => {});
          let timer;
          const timeout = new Promise((_, reject) => {
            timer = setTimeout(() => reject(new Error('WebTransport not ready after 3 s')), 3000);
          });
          try {
            await Promise.race([wt.ready, timeout]);
          } catch (e) {
            try { wt.close(); } catch { /* already failed */ }
            throw e;
          } finally {
            clearTimeout(timer);
          }
          return wt;
        };
        const viaWebSocket = () => {
          const ws = new WebSocket(`ws://${location.host}/ws`, 'livegate.v1.json');
          window.ws = ws;
          ws.onopen = () => ws.send(JSON.stringify({ type: 'subscribe', id: 1, topic }));
          ws.onmessage = (e) => {
            const f = JSON.parse(e.data);
            if (f.type === 'subscribed') window.subscribed = f;
            else if (f.type === 'publication') window.got.push({ offset: f.offset, data: f.data });
          };
          ws.onerror = () => { window.failure = window.failure || 'websocket error'; };
        };
        (async () => {
          const started = performance.now();
          try {
            await viaWebTransport();
            window.transport = 'webtransport';
            return;
          } catch (e) {
            window.wtError = `${e.name}: ${e.message}`;
            window.wtFailedAfterMs = performance.now() - started;
          }
          window.transport = 'websocket';
          viaWebSocket();
        })().catch((e) => { window.failure = String(e); });
      }, topic);
      await page.waitForFunction(
        () => window.failure || window.transport === 'webtransport' || window.subscribed,
        null, { timeout: 15_000 },
      );
      const state = await page.evaluate(() => ({
        transport: window.transport, wtError: window.wtError, failure: window.failure,
        advertised: window.advertised, subscribed: window.subscribed, after: window.wtFailedAfterMs,
      }));
      assert.equal(state.failure, null);
      assert.equal(state.advertised, advertised);
      assert.equal(state.transport, 'websocket', `WebTransport should have failed (${JSON.stringify(state)})`);
      assert.equal(typeof state.wtError, 'string');
      assert.ok(state.wtError.length > 0);
      assert.ok(state.after < 5_000, `the WebTransport attempt gave up after ${state.after} ms`);
      assert.equal(state.subscribed.topic, topic);
      const figures = await stats(gw.url);
      assert.equal(figures.connections.ws, 1);
      assert.equal(figures.connections.wt, 0);

      for (let n = 1; n <= 10; n++) await publish(gw.url, topic, { n });
      await page.waitForFunction(() => window.got.length >= 10, null, { timeout: 10_000 });
      await page.waitForTimeout(200);
      const got = await page.evaluate(() => window.got);
      assert.deepEqual(got.map((p) => p.offset), offsets(1, 10));
      assert.deepEqual(got.map((p) => p.data), offsets(1, 10).map((n) => ({ n })));
      assert.deepEqual(pageErrors, []);
      t.diagnostic(`WebTransport to ${advertised} failed after ${Math.round(state.after)} ms: ${state.wtError}`);
    });
  } finally {
    await gw.stop();
  }
}

test('a page falls back to WebSocket when WebTransport\'s UDP port does not answer', { timeout: 60_000 }, async (t) => {
  // Nothing listens on UDP port 9 of the loopback: the kernel refuses at once.
  await fallbackCase(t, 'https://127.0.0.1:9/wt', 'browser.wt.fallback');
});

test('a page falls back to WebSocket when WebTransport\'s UDP packets are dropped', { timeout: 60_000 }, async (t) => {
  // A UDP socket that reads and never answers, as a firewall that drops
  // QUIC would: only the page's 3 s timeout on `ready` ends the attempt.
  const sink = dgram.createSocket('udp4');
  let packets = 0;
  sink.on('message', () => { packets += 1; });
  await new Promise((r) => sink.bind(0, '127.0.0.1', r));
  try {
    await fallbackCase(t, `https://127.0.0.1:${sink.address().port}/wt`, 'browser.wt.fallback.silent');
    assert.ok(packets > 0, 'the page did try WebTransport (QUIC packets reached the silent port)');
  } finally {
    sink.close();
  }
});



test('WebTransport page resumes with since after reconnecting', { timeout: 60_000 }, async () => {
  const gw = await startGateway(['--no-system-publisher']);
  const topic = 'browser.wt.resume';
  try {
    await withBrowser(gw, async (page, pageErrors) => {
      await page.evaluate(async (topic) => {
        const s = await window.lg.open('first');
        await s.send({ type: 'subscribe', id: 1, topic });
      }, topic);
      await page.waitForFunction(() => window.sessions.first.subscribed.length === 1 || window.sessions.first.errors.length > 0, null, { timeout: 10_000 });
      for (let n = 1; n <= 5; n++) await publish(gw.url, topic, { n });
      await page.waitForFunction(() => window.sessions.first.got.length >= 5 || window.sessions.first.errors.length > 0, null, { timeout: 10_000 });
      const first = await page.evaluate(() => window.sessions.first);
      assert.deepEqual(first.errors, []);
      assert.deepEqual(first.got.map((p) => p.offset), offsets(1, 5));
      const epoch = first.got[4].epoch;
      assert.equal(typeof epoch, 'string');

      await page.evaluate(() => window.lg.handles.first.close());
      // Published while the page is away: only `since` can bring them back.
      await until(async () => (await stats(gw.url)).connections.wt === 0, 5_000, 'the gateway to see the session close');
      for (let n = 6; n <= 10; n++) await publish(gw.url, topic, { n });

      await page.evaluate(async ({ topic, epoch }) => {
        const s = await window.lg.open('second');
        await s.send({ type: 'subscribe', id: 1, topic, since: { epoch, offset: 5 } });
      }, { topic, epoch });
      await page.waitForFunction(() => window.sessions.second.subscribed.length === 1 || window.sessions.second.errors.length > 0, null, { timeout: 10_000 });
      let second = await page.evaluate(() => window.sessions.second);
      assert.deepEqual(second.errors, []);
      const sub = second.subscribed[0];
      assert.equal(sub.topic, topic);
      assert.equal(sub.recovered, true, `subscribed: ${JSON.stringify(sub)}`);
      assert.equal(sub.epoch, epoch);
      assert.equal(sub.offset, 10);
      assert.deepEqual(sub.publications.map((p) => p.offset), offsets(6, 10));
      assert.deepEqual(sub.publications.map((p) => p.data), offsets(6, 10).map((n) => ({ n })));
      assert.ok(sub.publications.every((p) => p.type === 'publication' && p.topic === topic && p.epoch === epoch));

      // Live again from 11, with nothing of 6..10 repeated.
      await publish(gw.url, topic, { n: 11 });
      await page.waitForFunction(() => window.sessions.second.got.length >= 1, null, { timeout: 10_000 });
      await page.waitForTimeout(200);
      second = await page.evaluate(() => window.sessions.second);
      assert.deepEqual(second.got.map((p) => [p.offset, p.data, p.stream]), [[11, { n: 11 }, sub.stream]]);
      assert.deepEqual(second.errors, []);
      assert.deepEqual(pageErrors, []);
      await page.evaluate(() => window.lg.handles.second.close());
    });
  } finally {
    await gw.stop();
  }
});
