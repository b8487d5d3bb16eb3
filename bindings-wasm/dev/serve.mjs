// A loopback server for pages that use the browser package: it serves the
// built package (bindings-wasm/pkg) under /pkg/, this folder's demo page at
// /, a blank test page at /test.html, and passes every other request, WebSocket upgrades included,
// to the gateway, so the page and the gateway share one origin (the gateway
// sends no CORS headers). Like a flaky proxy it can refuse a transport
// (`block('ws' | 'sse' | 'poll')`), drop every connection (`dropAll()`) or
// answer the event stream with garbage (`garbageSse = true`).
import http from 'node:http';
import net from 'node:net';
import fs from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
export const pkgDir = path.resolve(here, '../pkg');

const TYPES = { '.js': 'text/javascript', '.wasm': 'application/wasm', '.html': 'text/html', '.ts': 'text/plain', '.json': 'application/json', '.mjs': 'text/javascript' };

export const TEST_PAGE = `<!doctype html><meta charset="utf-8"><title>livegate test</title>
<script type="module">import * as livegate from '/pkg/index.js'; window.livegate = livegate; window.ready = true;</script>`;

// Serves `files` (path -> {type, body}) or, for /pkg/..., files of the package.
async function serveStatic(req, res, extra) {
  const url = new URL(req.url, 'http://x');
  if (url.pathname === '/test.html') {
    res.writeHead(200, { 'content-type': 'text/html' }).end(TEST_PAGE);
    return true;
  }
  if (url.pathname === '/') {
    res.writeHead(200, { 'content-type': 'text/html' }).end(await fs.readFile(path.join(here, 'index.html')));
    return true;
  }
  for (const [prefix, dir] of extra) {
    if (!url.pathname.startsWith(prefix)) continue;
    const file = path.resolve(dir, decodeURIComponent(url.pathname.slice(prefix.length)));
    if (!file.startsWith(dir + path.sep)) {
      res.writeHead(403).end();
      return true;
    }
    try {
      const body = await fs.readFile(file);
      res.writeHead(200, { 'content-type': TYPES[path.extname(file)] ?? 'application/octet-stream' }).end(body);
    } catch {
      res.writeHead(404).end('not found');
    }
    return true;
  }
  return false;
}

export async function startPageServer(gatewayUrl, { dirs = [], port = 0 } = {}) {
  const gw = new URL(gatewayUrl);
  const sockets = new Set();
  const blocked = new Set();
  const counts = { ws: 0, sse: 0, poll: 0 };
  const track = (s) => { sockets.add(s); s.on('close', () => sockets.delete(s)); s.on('error', () => {}); };
  const state = { garbageSse: false };
  const extra = [['/pkg/', pkgDir], ...dirs];

  const server = http.createServer(async (req, res) => {
    if (await serveStatic(req, res, extra)) return;
    const kind = new URL(req.url, 'http://x').pathname.slice(1);
    if (kind in counts) counts[kind] += 1;
    if (blocked.has(kind)) {
      res.writeHead(503, { 'content-type': 'application/json' })
        .end('{"type":"error","code":"unavailable","message":"blocked by the test proxy"}');
      return;
    }
    if (kind === 'sse' && state.garbageSse) {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.end('event: connected\ndata: {this is not json\n\n');
      return;
    }
    const up = http.request({
      host: gw.hostname, port: gw.port, method: req.method, path: req.url, headers: req.headers, agent: false,
    }, (upRes) => {
      res.writeHead(upRes.statusCode, upRes.headers);
      upRes.pipe(res);
    });
    up.on('socket', track);
    up.on('error', () => res.destroy());
    req.pipe(up);
  });
  server.on('connection', track);
  server.on('upgrade', (req, socket, head) => {
    counts.ws += 1;
    if (blocked.has('ws')) {
      socket.end('HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\n\r\n');
      return;
    }
    const up = net.connect(Number(gw.port), gw.hostname, () => {
      const lines = [`${req.method} ${req.url} HTTP/1.1`];
      for (let i = 0; i < req.rawHeaders.length; i += 2) lines.push(`${req.rawHeaders[i]}: ${req.rawHeaders[i + 1]}`);
      up.write(lines.join('\r\n') + '\r\n\r\n');
      if (head.length) up.write(head);
      up.pipe(socket);
      socket.pipe(up);
    });
    track(up);
    up.on('close', () => socket.destroy());
    socket.on('close', () => up.destroy());
  });
  await new Promise((r) => server.listen(port, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${server.address().port}`,
    counts,
    set garbageSse(v) { state.garbageSse = v; },
    block(kind) { blocked.add(kind); },
    unblock(kind) { blocked.delete(kind); },
    dropAll() { for (const s of sockets) s.destroy(); },
    close() {
      for (const s of sockets) s.destroy();
      return new Promise((r) => server.close(r));
    },
  };
}

// `node bindings-wasm/dev/serve.mjs [GATEWAY_URL] [PORT]`: the demo page.
if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const gateway = process.argv[2] ?? 'http://127.0.0.1:8080';
  const s = await startPageServer(gateway, { port: Number(process.argv[3] ?? 8081) });
  console.log(`demo page on ${s.url}/ (the package under /pkg/, everything else from ${gateway})`);
}
