// The live page at `/` shows the machine's figures updating every second
// through the gateway itself, in the browser's own EventSource.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chromium } from 'playwright-core';
import { startGateway, startProxy, chromiumArgs } from './gateway.mjs';

test('live page streams $sys figures and keeps updating', { timeout: 60_000 }, async () => {
  const gw = await startGateway(['--system-interval-ms', '500']);
  // Playwright gives every launch a fresh temporary profile (--user-data-dir).
  const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: chromiumArgs });
  try {
    const page = await browser.newPage();
    await page.goto(gw.url + '/');
    await page.waitForFunction(() => /live/i.test(document.querySelector('#stext')?.textContent || ''), null, { timeout: 10_000 });
    // CPU shows a percentage, memory a size: real values arrived.
    await page.waitForFunction(() => /\d+(\.\d+)?\s*%/.test(document.querySelector('#cpu')?.textContent || ''), null, { timeout: 10_000 });
    assert.match(await page.textContent('#mem'), /\d/);
    // The gateway card counts this page's SSE connection.
    await page.waitForFunction(() => (document.querySelector('#c-sse')?.textContent || '').trim() === '1', null, { timeout: 10_000 });
    const first = Number((await page.textContent('#m-in')).replace(/\D/g, ''));
    await page.waitForTimeout(1500);
    const second = Number((await page.textContent('#m-in')).replace(/\D/g, ''));
    assert.ok(second > first, `messages in should grow while the page is open (${first} -> ${second})`);
  } finally {
    await browser.close();
    await gw.stop();
  }
});

test('EventSource resumes with Last-Event-ID after the connection drops', { timeout: 60_000 }, async () => {
  const gw = await startGateway(['--no-system-publisher']);
  const proxy = await startProxy(gw.url);
  // Playwright gives every launch a fresh temporary profile (--user-data-dir).
  const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: chromiumArgs });
  const publish = async (n) => {
    const r = await fetch(`${gw.url}/api/publish/browser.t`, {
      method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ n }),
    });
    assert.equal(r.status, 200);
  };
  try {
    const page = await browser.newPage();
    await page.goto(proxy.url + '/health');
    await page.evaluate(() => {
      window.got = [];
      window.opens = 0;
      const es = new EventSource('/sse?topic=browser.t');
      es.onopen = () => { window.opens += 1; };
      es.addEventListener('publication', (e) => window.got.push(JSON.parse(e.data).data.n));
    });
    await page.waitForFunction(() => window.opens === 1, null, { timeout: 10_000 });
    for (let n = 1; n <= 3; n++) await publish(n);
    await page.waitForFunction(() => window.got.length === 3, null, { timeout: 10_000 });
    proxy.dropAll();
    // Published while the browser is away: they must arrive through Last-Event-ID.
    for (let n = 4; n <= 6; n++) await publish(n);
    await page.waitForFunction(() => window.opens === 2 && window.got.length >= 6, null, { timeout: 15_000 });
    await page.waitForTimeout(300);
    assert.deepEqual(await page.evaluate(() => window.got), [1, 2, 3, 4, 5, 6]);
  } finally {
    await browser.close();
    await proxy.close();
    await gw.stop();
  }
});
