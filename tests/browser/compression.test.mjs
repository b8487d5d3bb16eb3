// Compression in the browser's own clients: Chromium's WebSocket negotiates
// permessage-deflate and its EventSource accepts gzip; both must receive
// exactly the publications an uncompressed reader gets (the history API,
// asked for identity).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chromium } from 'playwright-core';
import { startGateway, chromiumArgs, publish } from './gateway.mjs';

const ANSWER = 'permessage-deflate; server_no_context_takeover; client_no_context_takeover';

// About 2 KiB of dashboard JSON that changes a little each time.
const snapshot = (i) => ({
  seq: i,
  hosts: Array.from({ length: 24 }, (_, h) => ({ name: `node-${h}`, cpu: (h * 7 + i) % 100, status: 'ok' })),
});

test('compressed WebSocket and gzip EventSource deliver what an uncompressed reader gets', { timeout: 60_000 }, async () => {
  const gw = await startGateway(['--no-system-publisher']);
  const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: chromiumArgs });
  try {
    const page = await browser.newPage();
    const sseEncodings = [];
    page.on('response', (r) => {
      if (r.url().includes('/sse?')) sseEncodings.push(r.headers()['content-encoding']);
    });
    await page.goto(gw.url + '/health');
    await page.evaluate(() => {
      window.ws = [];
      window.sse = [];
      window.pongs = [];
      const ws = new WebSocket(location.origin.replace('http', 'ws') + '/ws');
      window.sock = ws;
      ws.onopen = () => {
        window.ext = ws.extensions;
        ws.send(JSON.stringify({ type: 'subscribe', id: 1, topic: 'browser.z' }));
      };
      ws.onmessage = (e) => {
        const f = JSON.parse(e.data);
        if (f.type === 'subscribed') window.subscribed = true;
        if (f.type === 'publication') window.ws.push(e.data);
        if (f.type === 'pong') window.pongs.push(f.id);
      };
      const es = new EventSource('/sse?topic=browser.z');
      es.onopen = () => { window.sseOpen = true; };
      es.addEventListener('publication', (e) => window.sse.push(e.data));
    });
    await page.waitForFunction(() => window.subscribed && window.sseOpen, null, { timeout: 10_000 });
    const values = Array.from({ length: 20 }, (_, i) => (i % 4 === 3 ? { small: i } : snapshot(i)));
    for (const v of values) await publish(gw.url, 'browser.z', v);
    await page.waitForFunction(() => window.ws.length === 20 && window.sse.length === 20, null, { timeout: 10_000 });
    assert.equal(await page.evaluate(() => window.ext), ANSWER);
    assert.ok(sseEncodings.includes('gzip'), `SSE content-encoding: ${sseEncodings}`);

    const r = await fetch(`${gw.url}/api/topics/browser.z/history`, { headers: { 'accept-encoding': 'identity' } });
    const history = (await r.json()).publications;
    const ws = (await page.evaluate(() => window.ws)).map((s) => JSON.parse(s));
    const sse = (await page.evaluate(() => window.sse)).map((s) => JSON.parse(s));
    assert.deepEqual(ws.map((f) => f.data), values);
    assert.deepEqual(sse, ws);
    const fields = ({ topic, epoch, offset, data, time }) => ({ topic, epoch, offset, data, time });
    assert.deepEqual(ws.map(fields), history.map(fields));

    // Chromium compresses what it sends too: a large ping is inflated and answered.
    await page.evaluate(() => window.sock.send(JSON.stringify({ type: 'ping', id: 9 }) + ' '.repeat(4000)));
    await page.waitForFunction(() => window.pongs.includes(9), null, { timeout: 10_000 });
  } finally {
    await browser.close();
    await gw.stop();
  }
});
