// Runs the shared client conformance scenarios (tests/conformance) through
// the Node package `livegate`. It mirrors the Rust runner
// (gateway/tests/conformance.rs) and the Python one
// (tests/e2e/python/conformance_runner.py) step for step: the real gateway,
// the fault proxy (`livegate-faultproxy`) in front of it on loopback, the
// client under test pointed at the proxy, publications made over HTTP
// straight to the gateway with `data = {"n": N, "pad": "x".repeat(pad)}`.
//
// What the app sees is recorded from the public API only: `client.on('status')`
// (state changes with the transport a connection opened on, `subscribed`,
// `recovered`) and, for every scenario topic, the subscription's own
// 'publication', 'subscribed' and 'recovered' events, which must agree.
// Every wait is bounded; every process started here is stopped by its pid.
import fs from 'node:fs';
import { spawn } from 'node:child_process';
import { Client, LivegateError } from 'livegate';
import { faultProxyPath, gateway, lineReader, sleep } from './helpers.mjs';

const SCENARIOS = new URL('../../conformance/scenarios.json', import.meta.url);

/** What the Rust runner uses when a scenario does not say. */
const DEFAULT_TRANSPORTS = ['ws', 'sse', 'poll'];
const DEFAULT_BACKOFF_MS = [500, 20_000];
/** Scenario client settings (ms) and the `Client` option each maps to. */
const CLIENT_SETTINGS = {
  heartbeat_margin_ms: 'heartbeatMargin',
  upgrade_probe_ms: 'upgradeProbe',
  connect_timeout_ms: 'connectTimeout',
};
/** Whole-scenario bound, as in the Rust runner. */
export const SCENARIO_TIMEOUT_MS = 120_000;

export class StepFailed extends Error {}

export function loadScenarios() {
  const doc = JSON.parse(fs.readFileSync(SCENARIOS, 'utf8'));
  if (doc.version !== 1) throw new Error(`unknown scenarios.json version ${doc.version}`);
  return doc.scenarios;
}

/** [scenario, transports from its matrix or null, test name] for every run. */
export function variants() {
  const out = [];
  for (const sc of loadScenarios()) {
    if (sc.matrix?.length) {
      for (const entry of sc.matrix) out.push([sc, [...entry], `${sc.name}-${entry.join('+')}`]);
    } else {
      const tr = sc.client?.transports ?? DEFAULT_TRANSPORTS;
      out.push([sc, null, `${sc.name}-${tr.join('+')}`]);
    }
  }
  return out;
}

/** `livegate-faultproxy`, driven over its stdin. */
class FaultProxy {
  static async start(upstream) {
    const proxy = new FaultProxy();
    const bin = faultProxyPath();
    if (!fs.existsSync(bin)) {
      throw new Error(`${bin} is missing: build it with \`cargo build -p livegate-faultproxy\``);
    }
    proxy.child = spawn(bin, ['--listen', '127.0.0.1:0', '--upstream', upstream], { stdio: ['pipe', 'pipe', 'pipe'] });
    proxy.stderr = '';
    proxy.child.stderr.on('data', (d) => { proxy.stderr += d; });
    proxy.child.stdin.on('error', () => {});
    proxy.readLine = lineReader(proxy.child.stdout);
    proxy.queue = Promise.resolve();
    const first = await proxy.readLine(10_000).catch(() => null);
    const prefix = 'faultproxy listening on ';
    if (!first?.startsWith(prefix)) {
      proxy.stop();
      throw new Error(`fault proxy: unexpected first line ${first}; stderr: ${proxy.stderr}`);
    }
    proxy.addr = first.slice(prefix.length);
    return proxy;
  }

  /** Sends one command; resolves with its answer line (commands run one at a time). */
  command(cmd) {
    const run = this.queue.then(async () => {
      this.child.stdin.write(`${cmd}\n`);
      try {
        return await this.readLine(10_000);
      } catch {
        throw new StepFailed(`fault proxy gave no answer to ${cmd} (exit ${this.child.exitCode}); stderr: ${this.stderr.slice(-2000)}`);
      }
    });
    this.queue = run.catch(() => {});
    return run;
  }

  async accepted() {
    try {
      return Number(JSON.parse(await this.command('stats')).accepted ?? 0);
    } catch {
      return 0;
    }
  }

  /** EOF on stdin makes it exit; SIGKILL by pid after 3 s otherwise. */
  async stop() {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    const exited = new Promise((r) => this.child.once('exit', r));
    this.child.stdin.end();
    const timer = setTimeout(() => process.kill(this.child.pid, 'SIGKILL'), 3000);
    await exited;
    clearTimeout(timer);
  }
}

/** POST /api/publish/{topic} with {n, pad} for n in first..first+count; no retries (a retry could publish twice). */
async function publishHttp(base, topic, first, count, pad, intervalMs, stop) {
  const padding = 'x'.repeat(pad);
  for (let n = first; n < first + count; n++) {
    if (stop.stopped) throw new Error(`publishing stopped before n=${n}`);
    const r = await fetch(`${base}/api/publish/${topic}`, {
      method: 'POST', headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ n, pad: padding }), signal: AbortSignal.timeout(10_000),
    });
    const body = await r.text();
    if (r.status !== 200) throw new Error(`publish ${n} answered ${r.status}: ${body.slice(0, 200)}`);
    if (intervalMs > 0) await sleep(intervalMs);
  }
}

class Run {
  constructor(scenario, transports) {
    this.scenario = scenario;
    const c = scenario.client ?? {};
    this.transports = transports ?? c.transports ?? DEFAULT_TRANSPORTS;
    this.topics = [...(c.topics ?? [])];
    this.backoff = [c.backoff_min_ms ?? DEFAULT_BACKOFF_MS[0], c.backoff_max_ms ?? DEFAULT_BACKOFF_MS[1]];
    this.rec = {
      states: [], // [state, reason code, transport when opened, message]
      received: {},
      subscribedStatus: new Set(),
      subscribedSub: new Set(),
      recoveredStatus: [],
      recoveredSub: [],
      readerErrors: [],
    };
    this.published = {};
    this.background = [];
    this.acks = [];
    this.subs = [];
  }

  async startProcesses() {
    const gw = this.scenario.gateway ?? {};
    this.gatewayOptions = { config: gw.config ?? null, args: gw.args ?? [] };
    this.gateway = await gateway(this.gatewayOptions);
    this.proxy = await FaultProxy.start(new URL(this.gateway.url).host);
  }

  startClient() {
    const options = {
      transports: this.transports,
      encoding: 'msgpack',
      backoff: { min: this.backoff[0], max: this.backoff[1] },
      topics: this.topics,
    };
    const c = this.scenario.client ?? {};
    for (const [key, option] of Object.entries(CLIENT_SETTINGS)) {
      if (key in c) options[option] = c[key];
    }
    this.client = new Client(`http://${this.proxy.addr}`, options);
    this.client.on('status', (ev) => {
      if (ev.kind === 'state') {
        this.rec.states.push([ev.state, ev.code ?? '', ev.code === 'opened' ? ev.transport : null, ev.message ?? '']);
      } else if (ev.kind === 'subscribed') {
        this.rec.subscribedStatus.add(ev.topic);
      } else if (ev.kind === 'recovered') {
        this.rec.recoveredStatus.push([ev.topic, ev.recovered]);
      }
    });
    for (const t of this.topics) {
      const sub = this.client.subscribe(t);
      const got = [];
      this.rec.received[t] = got;
      sub.on('publication', (p) => got.push(Number(p.data?.n ?? 0)));
      sub.on('subscribed', () => this.rec.subscribedSub.add(t));
      sub.on('recovered', (r) => this.rec.recoveredSub.push([t, r.recovered]));
      sub.on('error', (e) => this.rec.readerErrors.push(`subscribe(${t}): ${e}`));
      this.subs.push(sub);
    }
  }

  lastStates(n = 6) {
    return JSON.stringify(this.rec.states.slice(-n).map((s) => s.slice(0, 3)));
  }

  async wait(timeoutMs, what, ok) {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (ok(this.rec)) return;
      if (Date.now() >= deadline) {
        throw new StepFailed(`timed out after ${timeoutMs} ms waiting for ${what}; states: ${this.lastStates()}; `
          + `client.state=${this.client.state}; reader errors: ${this.rec.readerErrors}`);
      }
      await sleep(10);
    }
  }

  currentState() {
    if (this.rec.states.length) return this.rec.states.at(-1).slice(0, 3);
    return [this.client.state, '', null];
  }

  async step(s) {
    const handler = this[`op_${s.op}`];
    if (!handler) throw new StepFailed(`unknown op ${s.op}`);
    await handler.call(this, s, s.topic ?? '', s.timeout_ms ?? 10_000);
  }

  async op_wait_state(s, topic, timeout) {
    const { state: want, transport: tr, reason } = s;
    await this.wait(timeout, `state ${want} transport=${tr} reason=${reason}`, () => {
      const [st, code, t] = this.currentState();
      return st === want && (tr == null || t === tr) && (reason == null || code === reason);
    });
  }

  async op_wait_subscribed(s, topic, timeout) {
    try {
      await this.wait(timeout, `subscribed to ${topic} (on status and on the subscription)`,
        (r) => r.subscribedStatus.has(topic) && r.subscribedSub.has(topic));
    } catch (e) {
      e.message += ` (seen on status: ${this.rec.subscribedStatus.has(topic)}, on the subscription: ${this.rec.subscribedSub.has(topic)})`;
      throw e;
    }
  }

  async op_publish(s, topic) {
    const count = Number(s.count);
    const first = (this.published[topic] ?? 0) + 1;
    this.published[topic] = first + count - 1;
    const stop = { stopped: false };
    const done = publishHttp(this.gateway.url, topic, first, count, Number(s.pad_bytes ?? 0), s.interval_ms ?? 0, stop);
    if (s.background) {
      done.catch(() => {}); // awaited by wait_publisher
      this.background.push({ done, stop });
    } else {
      try {
        await done;
      } catch (e) {
        throw new StepFailed(`publishing over HTTP failed: ${e.message}`);
      }
    }
  }

  async op_wait_publisher() {
    while (this.background.length) {
      const { done } = this.background.shift();
      let timer;
      const timeout = new Promise((_, reject) => {
        timer = setTimeout(() => reject(new StepFailed('background publishing did not finish within 60 s')), 60_000);
      });
      try {
        await Promise.race([done, timeout]);
      } catch (e) {
        throw e instanceof StepFailed ? e : new StepFailed(`background publishing failed: ${e.message}`);
      } finally {
        clearTimeout(timer);
      }
    }
  }

  async op_expect_received(s, topic, timeout) {
    const count = Number(s.count);
    await this.wait(timeout, `${count} publications on ${topic}`, (r) => (r.received[topic]?.length ?? 0) >= count);
    // Anything doubled would show up right behind.
    await sleep(100);
    const got = [...(this.rec.received[topic] ?? [])];
    const want = Array.from({ length: count }, (_, i) => i + 1);
    if (got.length !== want.length || got.some((v, i) => v !== want[i])) {
      let firstBad = got.findIndex((v, i) => v !== want[i]);
      if (firstBad < 0) firstBad = Math.min(got.length, count);
      const dups = got.length - new Set(got).size;
      const have = new Set(got);
      const missing = want.filter((n) => !have.has(n));
      throw new StepFailed(`received ${got.length} publications on ${topic}, expected exactly 1..=${count} in order; `
        + `first difference at index ${firstBad} (from there: ${got.slice(firstBad, firstBad + 5)}); ${dups} duplicates, `
        + `missing ${missing.slice(0, 10)}${missing.length > 10 ? '...' : ''}`);
    }
  }

  async op_expect_recovered(s, topic, timeout) {
    const want = Boolean(s.recovered);
    const has = (list) => list.some(([t, r]) => t === topic && r === want);
    await this.wait(timeout, `recovered=${want} on ${topic} (on status and on the subscription)`,
      (r) => has(r.recoveredStatus) && has(r.recoveredSub));
  }

  async op_expect_reconnects(s) {
    const atLeast = Number(s.at_least ?? 1);
    const n = this.rec.states.filter((st) => st[0] === 'reconnecting').length;
    if (n < atLeast) throw new StepFailed(`${n} reconnects, expected at least ${atLeast}; states: ${this.lastStates(12)}`);
  }

  async op_fault(s) {
    const answer = await this.proxy.command(s.command);
    if (answer !== 'ok') throw new StepFailed(`proxy answered ${answer} to ${s.command}`);
  }

  async op_restart_gateway() {
    await this.gateway.stop();
    this.gateway = await gateway(this.gatewayOptions);
    const cmd = `upstream ${new URL(this.gateway.url).host}`;
    const answer = await this.proxy.command(cmd);
    if (answer !== 'ok') throw new StepFailed(`proxy answered ${answer} to ${cmd}`);
  }

  async op_client_publish(s, topic) {
    const pad = 'x'.repeat(Number(s.pad_bytes ?? 0));
    for (let i = 1; i <= Number(s.count); i++) {
      // Queued now, in call order; the acks are awaited by expect_acks.
      const ack = this.client.publish(topic, { n: i, pad });
      ack.catch(() => {}); // inspected by expect_acks
      this.acks.push(ack);
    }
  }

  async op_expect_acks(s, topic, timeout) {
    const count = Number(s.count ?? 0);
    let timer;
    const late = new Promise((_, reject) => {
      timer = setTimeout(() => reject(new StepFailed('an ack did not come in time')), timeout);
    });
    let acks;
    try {
      acks = await Promise.race([Promise.all(this.acks), late]);
    } catch (e) {
      if (e instanceof LivegateError) throw new StepFailed(`publish failed: ${e.message} (code ${e.code})`);
      throw e;
    } finally {
      clearTimeout(timer);
    }
    this.acks = [];
    const offsets = new Set(acks.map((a) => a.offset));
    if (offsets.size !== count) {
      throw new StepFailed(`${offsets.size} distinct acked offsets, expected ${count}: ${[...offsets].sort((a, b) => a - b).slice(0, 30)}`);
    }
  }

  async op_expect_history(s, topic) {
    const count = Number(s.count ?? 0);
    const r = await fetch(`${this.gateway.url}/api/topics/${topic}/history?limit=1000`);
    const v = await r.json().catch((e) => { throw new StepFailed(`history: ${e.message}`); });
    const n = (v.publications ?? []).length;
    if (r.status !== 200 || n !== count || v.offset !== count) {
      throw new StepFailed(`history of ${topic} holds ${n} (latest offset ${v.offset}, status ${r.status}), expected exactly ${count}`);
    }
  }

  async op_expect_gateway_stat(s, topic, timeout) {
    const { stat } = s;
    const atLeast = Number(s.at_least ?? 1);
    const deadline = Date.now() + timeout;
    for (;;) {
      let v = {};
      try {
        v = await (await fetch(`${this.gateway.url}/api/stats`)).json();
      } catch { /* retried */ }
      if (Number.isInteger(v[stat]) && v[stat] >= atLeast) return;
      if (Date.now() >= deadline) throw new StepFailed(`gateway stat ${stat} stayed below ${atLeast}: ${JSON.stringify(v).slice(0, 500)}`);
      await sleep(50);
    }
  }

  async op_expect_no_reconnect(s) {
    const before = await this.proxy.accepted();
    await sleep(s.ms ?? 1000);
    const after = await this.proxy.accepted();
    if (this.client.state !== 'closed' || after !== before) {
      throw new StepFailed(`client state ${this.client.state}, proxy connections ${before} -> ${after}`);
    }
  }

  async op_sleep(s) {
    await sleep(s.ms ?? 0);
  }

  async runSteps() {
    this.startClient();
    for (const [i, st] of this.scenario.steps.entries()) {
      try {
        await this.step(st);
      } catch (e) {
        if (e instanceof StepFailed) throw new StepFailed(`step ${i + 1} (${st.op}): ${e.message}`);
        throw e;
      }
    }
  }

  async shutdown() {
    for (const b of this.background) b.stop.stopped = true;
    await Promise.allSettled(this.background.map((b) => b.done));
    if (this.client) await this.client.close();
    for (const sub of this.subs) sub.close();
    await Promise.allSettled(this.acks);
    await this.proxy?.stop();
    await this.gateway?.stop();
  }
}

/** Runs one scenario (with `transports` from its matrix, or null); throws StepFailed on the first step that does not hold. */
export async function runScenario(scenario, transports) {
  const run = new Run(scenario, transports);
  let timer;
  try {
    await run.startProcesses();
    const late = new Promise((_, reject) => {
      timer = setTimeout(() => reject(new StepFailed(`scenario took longer than ${SCENARIO_TIMEOUT_MS} ms; states: ${run.lastStates()}`)),
        SCENARIO_TIMEOUT_MS);
    });
    await Promise.race([run.runSteps(), late]);
  } finally {
    clearTimeout(timer);
    await run.shutdown();
  }
}
