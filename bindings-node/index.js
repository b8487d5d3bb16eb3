// livegate for Node: the idiomatic half over the native client (bindings.js).
// Subscriptions are EventEmitters and async iterables; everything that
// touches the network is in Rust. See README.md for the API.
'use strict';

const { EventEmitter } = require('node:events');
const native = require('./bindings.js');
const errors = require('./errors.js');

const {
  LivegateError, ConnectionError, ClosedError, ProtocolError, ArgumentError, PayloadError, fromNative,
} = errors;

/** Items moved from Rust per call. */
const BATCH = 1024;

const TRANSPORTS = {
  webtransport: 'wt', wt: 'wt', websocket: 'ws', ws: 'ws',
  sse: 'sse', longpoll: 'poll', 'long-poll': 'poll', poll: 'poll',
};

function describe(value) {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  return typeof value === 'object' ? `an object (${value.constructor?.name ?? 'Object'})` : `a ${typeof value}`;
}

function checkString(name, value, optional = false) {
  if (typeof value === 'string' || (optional && value == null)) return value ?? undefined;
  throw new ArgumentError(`${name} must be a string${optional ? ' or undefined' : ''}, not ${describe(value)}`, 'invalid');
}

function checkNumber(name, value) {
  if (value == null) return undefined;
  if (typeof value !== 'number' || Number.isNaN(value)) {
    throw new ArgumentError(`${name} must be a number, not ${describe(value)}`, 'invalid');
  }
  return value;
}

function checkObject(name, value) {
  if (value == null) return {};
  if (typeof value !== 'object' || Array.isArray(value)) {
    throw new ArgumentError(`${name} must be an object of options, not ${describe(value)}`, 'invalid');
  }
  return value;
}

function checkStrings(name, value) {
  if (value == null) return undefined;
  const list = typeof value === 'string' ? [value] : value;
  if (!Array.isArray(list) || list.some((v) => typeof v !== 'string')) {
    throw new ArgumentError(`${name} must be an array of strings, not ${describe(value)}`, 'invalid');
  }
  return list;
}

// Calls into the addon with its errors turned into livegate errors.
function call(fn) {
  try {
    return fn();
  } catch (e) {
    throw fromNative(e);
  }
}

async function settle(promise) {
  try {
    return await promise;
  } catch (e) {
    throw fromNative(e);
  }
}

/** `data` as the addon takes it: JSON text, or bytes for a binary payload. */
function encodeData(data) {
  if (Buffer.isBuffer(data)) return [undefined, data];
  if (ArrayBuffer.isView(data)) return [undefined, Buffer.from(data.buffer, data.byteOffset, data.byteLength)];
  if (data instanceof ArrayBuffer) return [undefined, Buffer.from(data)];
  let json;
  try {
    json = JSON.stringify(data);
  } catch (e) {
    let why = `the data cannot be encoded as JSON: ${e.message}`;
    if (/BigInt/i.test(e.message)) {
      why = 'a BigInt cannot be encoded as JSON: convert it with Number(x) or String(x) before publishing';
    } else if (/circular/i.test(e.message)) {
      why = 'the data holds a circular reference (an object that contains itself): publish a tree of plain values';
    }
    throw new PayloadError(why, 'bad_payload', { cause: e });
  }
  if (json === undefined) {
    throw new PayloadError(`${describe(data)} cannot be published: pass a JSON-compatible value ` +
      '(null for no data) or a Buffer', 'bad_payload');
  }
  return [json, undefined];
}

/** A batch from the addon as plain objects (README: Publication, StatusEvent). */
function decodeBatch(batch) {
  const items = JSON.parse(batch.json);
  for (const item of items) {
    if (item.kind !== 'publication') continue;
    if (item.binary !== undefined) {
      item.data = batch.binaries[item.binary];
      delete item.binary;
    }
    item.time = new Date(item.timeMs);
  }
  return items;
}

/** The `tls` option: `{ caFile, pinSha256 }`. */
function tlsArgs(value) {
  const tls = checkObject('options.tls', value);
  for (const key of Object.keys(tls)) {
    if (key !== 'caFile' && key !== 'pinSha256') {
      throw new ArgumentError(`unknown TLS option ${JSON.stringify(key)}; they are caFile, pinSha256`, 'invalid');
    }
  }
  return [checkString('options.tls.caFile', tls.caFile, true), checkString('options.tls.pinSha256', tls.pinSha256, true)];
}

function publishArgs(topic, data, options) {
  checkString('topic', topic);
  const opts = checkObject('options', options);
  const event = checkString('options.event', opts.event, true);
  const [json, bytes] = encodeData(data);
  return [topic, json, bytes, event];
}

/**
 * Reads a native feed (subscription or status) in batches until it ends.
 * `deliver` gets each item; the returned promise never rejects.
 */
async function pump(feed, deliver, fail) {
  try {
    for (;;) {
      const batch = await settle(feed.next(BATCH));
      if (batch === null) return;
      for (const item of decodeBatch(batch)) deliver(item);
    }
  } catch (e) {
    fail(e);
  }
}

class Subscription extends EventEmitter {
  #native;
  #queue = [];
  #waiters = [];
  #started = false;
  #ended = false;
  #iterated = false;
  #closing = false;
  #error = null;

  constructor(nativeSub) {
    super();
    this.#native = nativeSub;
    // Reading starts with the first listener or iterator, so nothing
    // arrives before the app can see it.
    this.on('newListener', (name) => {
      if (name !== 'newListener' && name !== 'removeListener') this.#start();
    });
  }

  /** The topic. */
  get topic() {
    return this.#native.topic;
  }

  /** Whether the subscription has ended (closed, client closed, or refused). */
  get closed() {
    return this.#ended || this.#closing;
  }

  #start() {
    if (this.#started) return;
    this.#started = true;
    pump(this.#native, (item) => this.#deliver(item), (e) => this.#fail(e)).then(() => this.#end());
  }

  #deliver(item) {
    switch (item.kind) {
      case 'publication':
        if (this.#iterated) this.#push(item);
        this.emit('publication', item);
        break;
      case 'subscribed':
        this.emit('subscribed', item);
        break;
      case 'recovered':
        this.emit('recovered', item);
        break;
      case 'subscribe_failed':
        this.#fail(new ProtocolError(`subscribing to ${JSON.stringify(this.topic)} failed: ${item.message}`, item.code));
        break;
      default:
        break;
    }
  }

  #push(item) {
    const waiter = this.#waiters.shift();
    if (waiter) waiter.resolve({ value: item, done: false });
    else this.#queue.push(item);
  }

  #fail(err) {
    if (this.#error) return;
    this.#error = err;
    this.#native.close();
    const waiters = this.#waiters.splice(0);
    for (const w of waiters) w.reject(err);
    if (waiters.length > 0) this.#error = null; // handed to the iterator
    if (this.listenerCount('error') > 0) {
      this.emit('error', err);
    } else if (!this.#iterated) {
      // Node's rule for an 'error' nobody listens to: it is thrown, outside
      // any promise (so never an unhandled rejection).
      process.nextTick(() => this.emit('error', err));
    }
  }

  #end() {
    if (this.#ended) return;
    this.#ended = true;
    for (const w of this.#waiters.splice(0)) w.resolve({ value: undefined, done: true });
    this.emit('end');
  }

  #next() {
    if (this.#queue.length > 0) return Promise.resolve({ value: this.#queue.shift(), done: false });
    if (this.#error) {
      const err = this.#error;
      this.#error = null;
      return Promise.reject(err);
    }
    if (this.#ended) return Promise.resolve({ value: undefined, done: true });
    return new Promise((resolve, reject) => this.#waiters.push({ resolve, reject }));
  }

  /** Publications, each exactly once and in order across reconnects. */
  [Symbol.asyncIterator]() {
    this.#iterated = true;
    this.#start();
    return {
      next: () => this.#next(),
      return: async () => {
        this.close();
        return { value: undefined, done: true };
      },
      [Symbol.asyncIterator]() {
        return this;
      },
    };
  }

  /** Unsubscribes (once no other subscription of the client needs the topic). */
  close() {
    this.#closing = true;
    this.#native.close();
    // A subscription never read has no pump to notice the end.
    if (!this.#started) this.#end();
  }
}

class Client extends EventEmitter {
  #native;
  #url;
  #closed = false;
  #status = null;
  #statusPumped = false;

  /**
   * A client of the gateway at `url`; it connects, and reconnects, on its own.
   * Options: transports, encoding, token, apiKey, backoff {min, max} (ms),
   * topics, connectTimeout, heartbeatMargin, upgradeProbe (ms), offlineQueue,
   * webtransportInsecure, webtransportCertHash, tls {caFile, pinSha256}.
   */
  constructor(url, options) {
    super();
    checkString('url', url);
    const o = checkObject('options', options);
    const known = new Set(['transports', 'encoding', 'token', 'apiKey', 'backoff', 'topics', 'connectTimeout',
      'heartbeatMargin', 'upgradeProbe', 'offlineQueue', 'webtransportInsecure', 'webtransportCertHash', 'tls']);
    for (const key of Object.keys(o)) {
      if (!known.has(key)) {
        throw new ArgumentError(`unknown option ${JSON.stringify(key)}; the options are ${[...known].join(', ')}`, 'invalid');
      }
    }
    const transports = checkStrings('options.transports', o.transports)?.map((name) => {
      const short = TRANSPORTS[name];
      if (!short) {
        throw new ArgumentError(`unknown transport ${JSON.stringify(name)}: use "webtransport" (or "wt"), ` +
          '"websocket" ("ws"), "sse" or "longpoll" ("poll")', 'invalid');
      }
      return short;
    });
    const [tlsCaFile, tlsPinSha256] = tlsArgs(o.tls);
    const backoff = o.backoff == null ? {} : checkObject('options.backoff', o.backoff);
    if (o.webtransportInsecure != null && typeof o.webtransportInsecure !== 'boolean') {
      throw new ArgumentError(`options.webtransportInsecure must be a boolean, not ${describe(o.webtransportInsecure)}`, 'invalid');
    }
    const opts = {
      transports,
      encoding: checkString('options.encoding', o.encoding, true),
      token: checkString('options.token', o.token, true),
      apiKey: checkString('options.apiKey', o.apiKey, true),
      backoffMin: checkNumber('options.backoff.min', backoff.min),
      backoffMax: checkNumber('options.backoff.max', backoff.max),
      topics: checkStrings('options.topics', o.topics),
      connectTimeout: checkNumber('options.connectTimeout', o.connectTimeout),
      heartbeatMargin: checkNumber('options.heartbeatMargin', o.heartbeatMargin),
      upgradeProbe: checkNumber('options.upgradeProbe', o.upgradeProbe),
      offlineQueue: checkNumber('options.offlineQueue', o.offlineQueue),
      webtransportInsecure: o.webtransportInsecure,
      webtransportCertHash: checkString('options.webtransportCertHash', o.webtransportCertHash, true),
      tlsCaFile,
      tlsPinSha256,
    };
    this.#url = url;
    this.#native = call(() => new native.NativeClient(url, opts));
    // Listeners and subscriptions come after the constructor returns: the
    // addon keeps every event from the start for the first status feed, and
    // a subscription per `topics` entry for its first subscribe(), so they
    // miss nothing. What is unclaimed by the next turn of the event loop is
    // dropped (it would grow for ever).
    setImmediate(() => this.#native.dropUnclaimed()).unref();
    this.on('newListener', (name) => {
      if (name === 'state' || name === 'status') this.#startStatus();
    });
  }

  #dropStatus() {
    this.#status?.close();
    this.#status = null;
  }

  /** `disconnected`, `connecting`, `connected`, `reconnecting` or `closed`. */
  get state() {
    return this.#native.state;
  }

  /** The live connection's transport (`wt`, `ws`, `sse`, `poll`), or null. */
  get transport() {
    return this.#native.transport ?? null;
  }

  /** The last error as `{code, message}` (a transport that failed to open...), or null. */
  get lastError() {
    return this.#native.lastError ?? null;
  }

  /** Whether the client was closed (by the app, or by the gateway for good). */
  get closed() {
    return this.#closed || this.#native.state === 'closed';
  }

  #checkOpen() {
    if (this.closed) throw new ClosedError('the client is closed; create a new one to connect again', 'closed');
  }

  #startStatus() {
    if (this.#statusPumped || this.closed) return;
    this.#statusPumped = true;
    this.#status = call(() => this.#native.status());
    // Pushed from Rust, not pulled: watching the state does not keep the
    // process alive (src/client.rs, NativeStatus::listen).
    this.#status.listen((batch) => {
      if (batch === null) return;
      for (const item of decodeBatch(batch)) {
        if (item.kind === 'state') this.emit('state', item);
        this.emit('status', item);
      }
    });
  }

  /** Resolves once connected; rejects with ConnectionError after `timeout` ms (default 10000). */
  async connect(timeout = 10_000) {
    this.#checkOpen();
    if (timeout !== null) checkNumber('timeout', timeout);
    await settle(this.#native.waitConnected(timeout ?? undefined));
    return this;
  }

  /** Subscribes to `topic`: an EventEmitter and an async iterable of its publications. */
  subscribe(topic) {
    checkString('topic', topic);
    this.#checkOpen();
    return new Subscription(call(() => this.#native.subscribe(topic)));
  }

  /**
   * Publishes `data` (a JSON-compatible value, or a Buffer/Uint8Array for a
   * binary payload). Queued now, in call order; resolves with the ack.
   * While offline it waits in the bounded offline queue; a retry lands once.
   */
  publish(topic, data, options) {
    const args = publishArgs(topic, data, options);
    this.#checkOpen();
    return settle(call(() => this.#native.publish(...args)));
  }

  /** Closes the connection and stops reconnecting; subscriptions end. */
  async close() {
    if (this.#closed) return;
    this.#closed = true;
    await settle(this.#native.close());
    this.#dropStatus();
  }

  [Symbol.for('nodejs.util.inspect.custom')]() {
    return `Client { url: ${JSON.stringify(this.#url)}, state: '${this.state}' }`;
  }
}

class Publisher {
  #native;
  #closed = false;

  /** Publishes over HTTP (`POST /api/publish/{topic}`). Options: apiKey, timeout (ms, default 15000), tls. */
  constructor(url, options) {
    checkString('url', url);
    const o = checkObject('options', options);
    const apiKey = checkString('options.apiKey', o.apiKey, true);
    const timeout = checkNumber('options.timeout', o.timeout);
    for (const key of Object.keys(o)) {
      if (!['apiKey', 'timeout', 'tls'].includes(key)) {
        throw new ArgumentError(`unknown option ${JSON.stringify(key)}; the options are apiKey, timeout, tls`, 'invalid');
      }
    }
    const [caFile, pinSha256] = tlsArgs(o.tls);
    this.#native = call(() => new native.NativePublisher(url, apiKey, timeout, caFile, pinSha256));
  }

  /** Publishes; resolves with the ack. Network errors and 5xx are retried until the timeout. */
  publish(topic, data, options) {
    const args = publishArgs(topic, data, options);
    if (this.#closed) throw new ClosedError('the publisher is closed; create a new one', 'closed');
    return settle(this.#native.publish(...args));
  }

  /** Refuses further publishes (each publish holds no connection of its own). */
  close() {
    this.#closed = true;
  }
}

// Spelled out, so that `import { Client } from 'livegate'` finds them.
module.exports = {
  Client,
  Subscription,
  Publisher,
  LivegateError,
  ConnectionError,
  ClosedError,
  ProtocolError,
  ArgumentError,
  PayloadError,
  version: require('./package.json').version,
  // The addon's own classes and functions (typed at the end of index.d.ts):
  // what the API above is built on, and the codecs the tests check.
  NativeClient: native.NativeClient,
  NativeSubscription: native.NativeSubscription,
  NativeStatus: native.NativeStatus,
  NativePublisher: native.NativePublisher,
  transcodeFrame: native.transcodeFrame,
  decodePublications: native.decodePublications,
};
