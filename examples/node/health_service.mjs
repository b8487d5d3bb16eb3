// A service-health publisher on plain node:http: it probes TCP ports and
// HTTP URLs every few seconds and publishes a `health_change` event on
// `health.changes` through livegate whenever a service's status flips.
//
//   npm run service          (LIVEGATE_URL, LIVEGATE_API_KEY, PORT, SERVICES, INTERVAL_MS)
//
// Its own API:
//   GET  /health                      every service's status
//   POST /services/{name}/status      body {"status": "down", "detail": "..."}: a manual report
import http from 'node:http';
import net from 'node:net';
import { Publisher } from 'livegate';

const GATEWAY = process.env.LIVEGATE_URL ?? 'http://127.0.0.1:8080';
const PORT = Number(process.env.PORT ?? 8000);
const INTERVAL_MS = Number(process.env.INTERVAL_MS ?? 5000);
// name=target pairs: `tcp://host:port` or `http://...`; the gateway itself by default.
const SERVICES = (process.env.SERVICES ?? `gateway=${GATEWAY}/health`).split(',').filter(Boolean).map((pair) => {
  const [name, target] = pair.split('=');
  return { name, target };
});

const publisher = new Publisher(GATEWAY, { apiKey: process.env.LIVEGATE_API_KEY });
/** name -> { status, detail, since } */
const health = new Map(SERVICES.map((s) => [s.name, { status: 'unknown', detail: 'not checked yet', since: new Date().toISOString() }]));

async function probe(target) {
  const started = Date.now();
  if (target.startsWith('tcp://')) {
    const { hostname, port } = new URL(target);
    return new Promise((resolve) => {
      const socket = net.connect({ host: hostname, port: Number(port), timeout: 2000 });
      const done = (status, detail) => { socket.destroy(); resolve({ status, detail, latencyMs: Date.now() - started }); };
      socket.once('connect', () => done('up', 'port open'));
      socket.once('timeout', () => done('down', 'connect timed out'));
      socket.once('error', (e) => done('down', e.code ?? e.message));
    });
  }
  try {
    const r = await fetch(target, { signal: AbortSignal.timeout(2000) });
    return { status: r.ok ? 'up' : 'degraded', detail: `HTTP ${r.status}`, latencyMs: Date.now() - started };
  } catch (e) {
    return { status: 'down', detail: e.cause?.code ?? e.message, latencyMs: Date.now() - started };
  }
}

/** Records a status; publishes `health_change` when it differs from the last one. */
async function report(name, status, detail, latencyMs = null) {
  const old = health.get(name);
  if (old && old.status === status) return;
  const now = new Date().toISOString();
  health.set(name, { status, detail, since: now });
  const event = { service: name, old_status: old?.status ?? 'unknown', new_status: status, checked_at: now, detail, latency_ms: latencyMs };
  try {
    const ack = await publisher.publish('health.changes', event, { event: 'health_change' });
    console.log(`health_change ${name}: ${event.old_status} -> ${status} (offset ${ack.offset})`);
  } catch (e) {
    // The Publisher retried until its timeout; the next flip publishes again.
    console.error(`could not publish ${name}'s change: ${e.message} (${e.code})`);
  }
}

async function checkAll() {
  await Promise.all(SERVICES.map(async ({ name, target }) => {
    const r = await probe(target);
    await report(name, r.status, r.detail, r.latencyMs);
  }));
}

function readJson(req) {
  return new Promise((resolve, reject) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (c) => { body += c; });
    req.on('end', () => { try { resolve(JSON.parse(body || '{}')); } catch (e) { reject(e); } });
  });
}

const server = http.createServer(async (req, res) => {
  const send = (code, value) => res.writeHead(code, { 'content-type': 'application/json' }).end(JSON.stringify(value));
  const manual = /^\/services\/([\w.-]+)\/status$/.exec(req.url ?? '');
  if (req.method === 'GET' && req.url === '/health') return send(200, Object.fromEntries(health));
  if (req.method === 'POST' && manual) {
    let body;
    try { body = await readJson(req); } catch { return send(400, { error: 'the body must be JSON' }); }
    if (!['up', 'degraded', 'down'].includes(body.status)) return send(400, { error: 'status must be up, degraded or down' });
    await report(manual[1], body.status, String(body.detail ?? 'reported by hand'));
    return send(200, health.get(manual[1]));
  }
  return send(404, { error: 'GET /health, POST /services/{name}/status' });
});

server.listen(PORT, '127.0.0.1', () => {
  console.log(`health service on http://127.0.0.1:${server.address().port}, publishing to ${GATEWAY}`);
  checkAll();
  setInterval(checkAll, INTERVAL_MS);
});
for (const signal of ['SIGINT', 'SIGTERM']) process.once(signal, () => process.exit(0));
