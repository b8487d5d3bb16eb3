// livegate's browser client. The engine (livegate-core, compiled to
// WebAssembly) decides everything: states, transport fallback and upgrade,
// resume positions, the offline publish queue and the exact request of each
// transport. This file only carries out what it asks (open a WebSocket,
// fetch an event stream, poll, open a WebTransport session, publish over
// HTTP), reports back what the network did and keeps one timer for the
// engine's next deadline. See docs/client.md, "Driving the engine".
import init, { Engine, httpFailure } from './livegate_wasm.js';

// Loads livegate_wasm_bg.wasm, next to this file.
await init();

const now = () => performance.now();
const encoder = new TextEncoder();
// How long an HTTP publish may wait for its answer before it is retried.
const PUBLISH_TIMEOUT_MS = 15_000;

/** An error with a livegate error code (`closed`, `invalid`, `bad_url`, ...). */
export class LivegateError extends Error {
  constructor(code, message) {
    super(message);
    this.name = 'LivegateError';
    this.code = code;
  }
}

const asLivegateError = (e) =>
  e instanceof LivegateError ? e : new LivegateError(e?.code ?? 'invalid', e?.message ?? String(e));

// A callback of the page that throws must not stop the driver: the error is
// reported the way an uncaught one would be.
function safely(fn, ...args) {
  try {
    fn(...args);
  } catch (err) {
    if (typeof reportError === 'function') reportError(err);
    else setTimeout(() => { throw err; });
  }
}

function gatewayBase(url) {
  const here = globalThis.location?.href;
  let u;
  try {
    u = here ? new URL(url, here) : new URL(url);
  } catch {
    throw new LivegateError('bad_url', `not a gateway URL: ${url}`);
  }
  if (u.protocol === 'ws:') u.protocol = 'http:';
  if (u.protocol === 'wss:') u.protocol = 'https:';
  if (u.protocol !== 'http:' && u.protocol !== 'https:') {
    throw new LivegateError('bad_url', `not a gateway URL (http, https, ws or wss): ${url}`);
  }
  if (u.username || u.password || u.search || u.hash) {
    throw new LivegateError('bad_url', `a gateway URL has no credentials, query or fragment: ${url}`);
  }
  return u.origin + u.pathname.replace(/\/+$/, '');
}

const messageOf = (err) => (err && err.message) || String(err);

/** One subscription: an async iterator of publications, and callbacks. */
export class Subscription {
  #client;
  #queue = [];
  #wake = null;
  #iterating = false;
  #ended = false;
  #failure = null;

  constructor(client, topic, id, handlers) {
    this.#client = client;
    this.topic = topic;
    this.id = id;
    this.handlers = handlers;
    /** Position of the last publication seen (`{epoch, offset}`), or null. */
    this.position = null;
  }

  /** @internal */
  _deliver(event) {
    const h = this.handlers;
    switch (event.type) {
      case 'publication':
        this.position = { epoch: event.epoch, offset: event.offset };
        if (h.onPublication) safely(h.onPublication, event);
        if (this.#iterating) this.#push(event);
        break;
      case 'subscribed':
        this.position = { epoch: event.epoch, offset: event.offset };
        if (h.onSubscribed) safely(h.onSubscribed, event);
        break;
      case 'recovered':
        if (h.onRecovered) safely(h.onRecovered, event);
        break;
      case 'failed':
        this._end(new LivegateError(event.code, event.message));
        break;
    }
  }

  /** @internal */
  _end(failure) {
    if (this.#ended) return;
    this.#ended = true;
    this.#failure = failure;
    if (failure && this.handlers.onError) safely(this.handlers.onError, failure);
    this.#push(null);
  }

  #push(item) {
    this.#queue.push(item);
    const w = this.#wake;
    this.#wake = null;
    if (w) w();
  }

  /** Stops this subscription; the topic goes once no subscription holds it. */
  unsubscribe() {
    if (this.#ended) return;
    this.#client._unsubscribe(this);
    this._end(null);
  }

  [Symbol.asyncIterator]() {
    this.#iterating = true;
    return {
      next: async () => {
        for (;;) {
          if (this.#queue.length > 0) {
            const item = this.#queue.shift();
            if (item !== null) return { value: item, done: false };
            this.#queue.unshift(null); // stay ended for later calls
            if (this.#failure) throw this.#failure;
            return { value: undefined, done: true };
          }
          await new Promise((r) => { this.#wake = r; });
        }
      },
      return: async () => {
        this.unsubscribe();
        return { value: undefined, done: true };
      },
      [Symbol.asyncIterator]() { return this; },
    };
  }
}

/**
 * A connection to a livegate gateway, shared by every subscription of the
 * client. `url`: the gateway's HTTP URL (`http://host:port[/prefix]`, or a
 * path of the page's origin such as `/`).
 */
export class Client {
  #engine;
  #base;
  #conns = new Map();
  #subs = new Map();
  #nextSub = 1;
  #waiters = new Map();
  #listeners = new Map();
  #timer = null;
  #pumping = false;
  #again = false;

  constructor(url, options = {}) {
    if (options === null || typeof options !== 'object') {
      throw new LivegateError('invalid', 'options must be an object');
    }
    this.#base = gatewayBase(url);
    try {
      this.#engine = new Engine(JSON.stringify(options), Math.random() * 2 ** 52);
    } catch (e) {
      throw asLivegateError(e);
    }
    // Connects once the caller's code has run, so listeners and
    // subscriptions added right after `new Client` see the first change.
    queueMicrotask(() => {
      this.#engine.connect(now());
      this.#pump();
    });
  }

  /** `disconnected`, `connecting`, `connected`, `reconnecting` or `closed`. */
  get state() { return this.#engine.state(); }

  /** The live connection's transport (`wt`, `ws`, `sse`, `poll`), or undefined. */
  get transport() { return this.#engine.transport(); }

  /**
   * Listens to `state` ({from, to, reason, message, transport}), `recovered`
   * ({topic, recovered, epoch, offset}) or `error` ({code, message}).
   * Returns a function that stops listening.
   */
  on(name, fn) {
    if (!['state', 'recovered', 'error'].includes(name)) {
      throw new LivegateError('invalid', `unknown event ${JSON.stringify(name)} (use state, recovered, error)`);
    }
    if (typeof fn !== 'function') throw new LivegateError('invalid', 'on() needs a function');
    if (!this.#listeners.has(name)) this.#listeners.set(name, new Set());
    this.#listeners.get(name).add(fn);
    return () => this.#listeners.get(name).delete(fn);
  }

  /**
   * Subscribes to `topic`. Options: `since` ({epoch, offset}: resume after
   * that publication), `onPublication`, `onSubscribed`, `onRecovered`,
   * `onError` callbacks. The result is also an async iterator of
   * publications.
   */
  subscribe(topic, options = {}) {
    if (typeof topic !== 'string') throw new LivegateError('invalid', 'a topic is a string');
    const { since, ...handlers } = options ?? {};
    if (since !== undefined && (since === null || typeof since !== 'object')) {
      throw new LivegateError('invalid', 'since is {epoch, offset}');
    }
    const id = this.#nextSub++;
    const sub = new Subscription(this, topic, id, handlers);
    try {
      this.#engine.subscribe(now(), topic, id, since?.epoch, since?.offset);
    } catch (e) {
      throw asLivegateError(e);
    }
    this.#subs.set(id, sub);
    this.#pump();
    return sub;
  }

  /** @internal */
  _unsubscribe(sub) {
    if (!this.#subs.delete(sub.id)) return;
    this.#engine.unsubscribe(now(), sub.topic, sub.id);
    this.#pump();
  }

  /**
   * Publishes `data` (any JSON value, or a Uint8Array as raw bytes) on
   * `topic`, with an optional `event` name. Resolves to {msgId, topic,
   * epoch, offset} once the gateway has it; waits through disconnections.
   */
  publish(topic, data, { event } = {}) {
    try {
      if (typeof topic !== 'string') throw new LivegateError('invalid', 'a topic is a string');
      let msgId;
      if (data instanceof Uint8Array) {
        msgId = this.#engine.publishBinary(now(), topic, event, data);
      } else {
        const json = JSON.stringify(data);
        if (json === undefined) throw new LivegateError('bad_payload', 'data is not a JSON value');
        msgId = this.#engine.publishJson(now(), topic, event, json);
      }
      const answer = new Promise((resolve, reject) => this.#waiters.set(msgId, { resolve, reject }));
      this.#pump();
      return answer;
    } catch (e) {
      return Promise.reject(asLivegateError(e));
    }
  }

  /** Closes for good; publishes not yet acknowledged fail with `closed`. */
  async close() {
    this.#engine.close(now());
    this.#pump();
  }

  // ---- the driver loop ----

  #pump() {
    if (this.#pumping) {
      this.#again = true;
      return;
    }
    this.#pumping = true;
    const e = this.#engine;
    try {
      do {
        this.#again = false;
        for (let a = e.nextAction(); a !== undefined; a = e.nextAction()) this.#carry(a);
        for (let ev = e.nextEvent(); ev !== undefined; ev = e.nextEvent()) this.#dispatch(ev);
      } while (this.#again);
    } finally {
      this.#pumping = false;
    }
    clearTimeout(this.#timer);
    this.#timer = null;
    const deadline = e.deadline();
    if (deadline !== undefined) {
      this.#timer = setTimeout(() => this.#report((en) => en.timeout(now())), Math.max(0, deadline - now()));
    }
  }

  // Feeds what the network did into the engine, then acts on the result.
  #report(feed) {
    feed(this.#engine);
    this.#pump();
  }

  #emit(name, value) {
    for (const fn of this.#listeners.get(name) ?? []) safely(fn, value);
  }

  #dispatch(ev) {
    switch (ev.type) {
      case 'topic':
        for (const id of ev.subs) this.#subs.get(id)?._deliver(ev.event);
        if (ev.event.type === 'recovered') this.#emit('recovered', { topic: ev.topic, ...ev.event, type: undefined });
        break;
      case 'ended': {
        const failure = new LivegateError(ev.event.code, ev.event.message);
        for (const id of ev.subs) {
          this.#subs.get(id)?._end(failure);
          this.#subs.delete(id);
        }
        this.#emit('error', { code: ev.event.code, message: `${ev.topic}: ${ev.event.message}` });
        break;
      }
      case 'answered': {
        const w = this.#waiters.get(ev.msgId);
        this.#waiters.delete(ev.msgId);
        if (!w) break;
        if (ev.ok) w.resolve({ msgId: ev.msgId, topic: ev.topic, epoch: ev.epoch, offset: ev.offset });
        else w.reject(new LivegateError(ev.code, ev.message));
        break;
      }
      case 'state':
        this.#emit('state', ev);
        if (ev.to === 'closed') this.#shutdown();
        break;
      case 'recovered':
        this.#emit('recovered', ev);
        break;
      case 'error':
      case 'subscribe_failed':
      case 'publish_failed':
        this.#emit('error', { code: ev.code, message: ev.message });
        break;
    }
  }

  #shutdown() {
    for (const c of this.#conns.values()) c.close();
    this.#conns.clear();
    for (const sub of this.#subs.values()) sub._end(null);
    this.#subs.clear();
  }

  #url(request, websocket = false) {
    if (request.absolute) return request.url;
    const url = this.#base + request.url;
    return websocket ? url.replace(/^http/, 'ws') : url;
  }

  #carry(a) {
    switch (a.type) {
      case 'connect':
        if (a.kind === 'websocket') this.#openWebSocket(a);
        else if (a.kind === 'sse') this.#openEventStream(a);
        else if (a.kind === 'poll') this.#openLongPoll(a);
        else if (a.kind === 'check') this.#check(a);
        else this.#openWebTransport(a);
        break;
      case 'discover':
        this.#discover(a);
        break;
      case 'send':
        this.#conns.get(a.conn)?.send(a);
        break;
      case 'httpPublish':
        this.#httpPublish(a);
        break;
      case 'close': {
        const c = this.#conns.get(a.conn);
        this.#conns.delete(a.conn);
        c?.close();
        break;
      }
    }
  }

  // A report about `conn` unless the engine already let it go.
  #closed(conn, why) {
    if (!this.#conns.has(conn)) return;
    this.#conns.delete(conn);
    this.#report((e) => e.closed(now(), conn, why));
  }

  #live(conn) { return this.#conns.has(conn); }

  #openWebSocket(a) {
    const { conn, request } = a;
    let ws;
    this.#conns.set(conn, {
      close: () => { if (ws) { ws.onopen = ws.onmessage = ws.onclose = ws.onerror = null; ws.close(); } },
      send: (s) => { try { ws.send(s.text ?? s.bytes); } catch { /* its close event follows */ } },
    });
    try {
      ws = new WebSocket(this.#url(request, true), request.subprotocol);
    } catch (err) {
      queueMicrotask(() => this.#closed(conn, `WebSocket: ${messageOf(err)}`));
      return;
    }
    ws.binaryType = 'arraybuffer';
    ws.onopen = () => this.#report((e) => e.opened(now(), conn));
    ws.onmessage = (m) => {
      const bytes = typeof m.data === 'string' ? encoder.encode(m.data) : new Uint8Array(m.data);
      this.#report((e) => e.frame(now(), conn, bytes));
    };
    ws.onclose = (c) => this.#closed(conn, `WebSocket closed (${c.code}${c.reason ? `: ${c.reason}` : ''})`);
  }

  // Fetches `request`; on an error status reports the failure and answers null.
  async #fetchOk(conn, request, signal, ok = (s) => s === 200) {
    let res;
    try {
      res = await fetch(this.#url(request), {
        method: request.method, headers: request.headers, signal, cache: 'no-store',
      });
    } catch (err) {
      if (!signal.aborted) this.#closed(conn, `${request.method} ${request.url}: ${messageOf(err)}`);
      return null;
    }
    if (!ok(res.status)) {
      const body = new Uint8Array(await res.arrayBuffer().catch(() => new ArrayBuffer(0)));
      this.#closed(conn, httpFailure(res.status, body));
      return null;
    }
    return res;
  }

  async #openEventStream({ conn, request }) {
    const ctl = new AbortController();
    this.#conns.set(conn, { close: () => ctl.abort(), send: () => {} });
    const res = await this.#fetchOk(conn, request, ctl.signal);
    if (!res || !this.#live(conn)) return;
    this.#report((e) => e.opened(now(), conn));
    const reader = res.body.getReader();
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done || !this.#live(conn)) break;
        this.#report((e) => e.sseChunk(now(), conn, value));
      }
      this.#closed(conn, 'the event stream ended');
    } catch (err) {
      if (!ctl.signal.aborted) this.#closed(conn, `event stream: ${messageOf(err)}`);
    }
  }

  async #check({ conn, request }) {
    const ctl = new AbortController();
    this.#conns.set(conn, { close: () => ctl.abort(), send: () => {} });
    const res = await this.#fetchOk(conn, request, ctl.signal, (s) => s >= 200 && s < 300);
    if (res && this.#live(conn)) this.#report((e) => e.opened(now(), conn));
  }

  async #openLongPoll({ conn }) {
    let ctl = new AbortController();
    this.#conns.set(conn, { close: () => ctl.abort(), send: () => {} });
    for (;;) {
      const request = this.#engine.pollRequest(conn);
      if (request === undefined || !this.#live(conn)) return;
      ctl = new AbortController();
      const timer = setTimeout(() => ctl.abort(new Error('no answer in time')), request.timeoutMs);
      let res, body;
      try {
        res = await fetch(this.#url(request), {
          method: request.method, headers: request.headers, signal: ctl.signal, cache: 'no-store',
        });
        body = new Uint8Array(await res.arrayBuffer());
      } catch (err) {
        if (this.#live(conn)) this.#closed(conn, `long-poll: ${messageOf(ctl.signal.reason ?? err)}`);
        return;
      } finally {
        clearTimeout(timer);
      }
      if (!this.#live(conn)) return;
      let again = false;
      this.#report((e) => { again = e.pollAnswer(now(), conn, res.status, body); });
      if (!again) {
        this.#conns.delete(conn);
        return;
      }
    }
  }

  async #discover({ conn, request }) {
    const ctl = new AbortController();
    this.#conns.set(conn, { close: () => ctl.abort(), send: () => {} });
    let res, body;
    try {
      res = await fetch(this.#url(request), { headers: request.headers, signal: ctl.signal, cache: 'no-store' });
      body = new Uint8Array(await res.arrayBuffer());
    } catch (err) {
      if (!ctl.signal.aborted) this.#closed(conn, `GET /wt/cert-hash: ${messageOf(err)}`);
      return;
    }
    // The Connect that follows (or the failure) replaces this entry.
    if (this.#live(conn)) this.#report((e) => e.discovery(now(), conn, res.status, body));
  }

  async #openWebTransport({ conn, request, certHash }) {
    let wt = null;
    let writer = null;
    this.#conns.set(conn, {
      close: () => { try { wt?.close(); } catch { /* already closed */ } },
      send: (s) => { writer?.write(s.bytes).catch(() => { /* wt.closed reports it */ }); },
    });
    if (typeof WebTransport === 'undefined') {
      queueMicrotask(() => this.#closed(conn, 'this browser has no WebTransport'));
      return;
    }
    try {
      wt = new WebTransport(request.url, {
        serverCertificateHashes: [{ algorithm: 'sha-256', value: certHash }],
      });
      wt.closed.then(
        (i) => this.#closed(conn, `WebTransport closed (${i?.closeCode ?? 0}${i?.reason ? `: ${i.reason}` : ''})`),
        (err) => this.#closed(conn, `WebTransport: ${messageOf(err)}`),
      );
      await wt.ready;
      const control = await wt.createBidirectionalStream();
      writer = control.writable.getWriter();
      if (!this.#live(conn)) return;
      this.#report((e) => e.opened(now(), conn));
      this.#readStream(conn, 0, control.readable);
      this.#readIncoming(conn, wt);
      this.#readDatagrams(conn, wt);
    } catch (err) {
      this.#closed(conn, `WebTransport: ${messageOf(err)}`);
    }
  }

  async #readStream(conn, stream, readable) {
    const reader = readable.getReader();
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done || !this.#live(conn)) break;
        this.#report((e) => e.streamChunk(now(), conn, stream, value));
      }
    } catch { /* the session's closed promise reports it */ }
    this.#engine.streamEnd(conn, stream);
    if (stream === 0) this.#closed(conn, 'the WebTransport control stream ended');
  }

  async #readIncoming(conn, wt) {
    const reader = wt.incomingUnidirectionalStreams.getReader();
    let next = 1;
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done || !this.#live(conn)) return;
        this.#readStream(conn, next++, value);
      }
    } catch { /* the session's closed promise reports it */ }
  }

  async #readDatagrams(conn, wt) {
    const reader = wt.datagrams.readable.getReader();
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done || !this.#live(conn)) return;
        this.#report((e) => e.frame(now(), conn, value));
      }
    } catch { /* the session's closed promise reports it */ }
  }

  async #httpPublish({ msgId, request }) {
    const ctl = new AbortController();
    const timer = setTimeout(() => ctl.abort(), PUBLISH_TIMEOUT_MS);
    try {
      const res = await fetch(this.#url(request), {
        method: request.method, headers: request.headers, body: request.body, signal: ctl.signal,
      });
      const body = new Uint8Array(await res.arrayBuffer());
      this.#report((e) => e.httpAnswered(now(), msgId, res.status, body));
    } catch (err) {
      const timedOut = ctl.signal.aborted;
      this.#report((e) => e.httpUnanswered(now(), msgId, messageOf(err), timedOut));
    } finally {
      clearTimeout(timer);
    }
  }
}
