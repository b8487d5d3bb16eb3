/* index.d.ts: `npm run typegen` writes it; edit dts-header.d.ts (the types
   of the hand-written index.js, first) or the Rust (the addon's, after). */
/* eslint-disable */
import { EventEmitter } from 'node:events';

/** A transport, by its long or short name. */
export type TransportName = 'webtransport' | 'wt' | 'websocket' | 'ws' | 'sse' | 'longpoll' | 'long-poll' | 'poll';

export interface ClientOptions {
  /** Transports to use, best first (default: webtransport, websocket, sse, longpoll). */
  transports?: TransportName | TransportName[];
  /** Frame encoding on WebSocket and WebTransport (default `json`). */
  encoding?: 'json' | 'msgpack';
  /** Sent as `Authorization: Bearer` on every connection. */
  token?: string;
  /** The gateway's API key, for publishes that go over HTTP (SSE, long-poll). */
  apiKey?: string;
  /** Reconnect delay bounds in ms (default 500 to 20000). */
  backoff?: { min?: number; max?: number };
  /** Subscribed with the client; take each with subscribe(topic) in the same turn of the event loop. */
  topics?: string | string[];
  /** How long a transport may take to open, ms (default 10000). */
  connectTimeout?: number;
  /** Silence tolerated past the gateway's heartbeat, ms (default 10000). */
  heartbeatMargin?: number;
  /** How often a fallback transport tries the better ones again, ms (default 60000). */
  upgradeProbe?: number;
  /** Publishes kept while disconnected (default 1000). */
  offlineQueue?: number;
  /** Accept any WebTransport certificate (development only). */
  webtransportInsecure?: boolean;
  /** Pin this WebTransport certificate SHA-256 (hex) instead of `/wt/cert-hash`. */
  webtransportCertHash?: string;
  /** For `https://` gateways: extra CAs (PEM file) or a pinned certificate SHA-256. */
  tls?: TlsOptions;
}

export interface TlsOptions {
  /** A PEM file of CAs trusted besides the system's roots. */
  caFile?: string;
  /** Accept exactly the certificate with this SHA-256 (64 hex characters). */
  pinSha256?: string;
}

export interface PublisherOptions {
  apiKey?: string;
  /** How long a publish may take, retries included, ms (default 15000). */
  timeout?: number;
  tls?: TlsOptions;
}

export interface PublishOptions {
  /** An event name such as `health_change`. */
  event?: string;
}

/** One publication, delivered exactly once and in order. */
export interface Publication {
  kind: 'publication';
  topic: string;
  /** The topic's epoch (changes when its history restarts). */
  epoch: string;
  /** Its offset in the topic (the first is 1). */
  offset: number;
  event: string | null;
  /** The payload: a JSON value, or a Buffer for a binary payload. */
  data: any;
  /** When the gateway accepted it. */
  time: Date;
  /** The same, in ms since the Unix epoch. */
  timeMs: number;
}

export interface StateEvent {
  kind: 'state';
  state: ClientState;
  previous: ClientState;
  /** Why, as a code (`opened`, `connection_lost`, `app_close`, ...). */
  code: string;
  message: string;
  /** The transport the change is about (opened, lost, failed), or null. */
  transport: 'wt' | 'ws' | 'sse' | 'poll' | null;
}

export interface SubscribedEvent { kind: 'subscribed'; topic: string; epoch: string; offset: number }
export interface RecoveredEvent { kind: 'recovered'; topic: string; epoch: string; offset: number; recovered: boolean }
export interface SubscribeFailedEvent { kind: 'subscribe_failed'; topic: string; code: string; message: string }
export interface ErrorEvent { kind: 'error'; code: string; message: string }
export type StatusEvent = StateEvent | SubscribedEvent | RecoveredEvent | SubscribeFailedEvent | ErrorEvent;

export type ClientState = 'disconnected' | 'connecting' | 'connected' | 'reconnecting' | 'closed';

/** A topic's publications: an async iterable and an EventEmitter. */
export declare class Subscription extends EventEmitter implements AsyncIterable<Publication> {
  readonly topic: string;
  readonly closed: boolean;
  [Symbol.asyncIterator](): AsyncIterator<Publication>;
  /** Unsubscribes (once no other subscription of the client needs the topic). */
  close(): void;
  on(event: 'publication', listener: (p: Publication) => void): this;
  on(event: 'subscribed', listener: (e: SubscribedEvent) => void): this;
  on(event: 'recovered', listener: (e: RecoveredEvent) => void): this;
  on(event: 'error', listener: (e: ProtocolError) => void): this;
  on(event: 'end', listener: () => void): this;
  once(event: 'publication', listener: (p: Publication) => void): this;
  once(event: 'subscribed', listener: (e: SubscribedEvent) => void): this;
  once(event: 'recovered', listener: (e: RecoveredEvent) => void): this;
  once(event: 'error', listener: (e: ProtocolError) => void): this;
  once(event: 'end', listener: () => void): this;
}

/** A connection to a livegate gateway that reconnects, resumes and falls back on its own. */
export declare class Client extends EventEmitter {
  constructor(url: string, options?: ClientOptions);
  readonly state: ClientState;
  readonly transport: 'wt' | 'ws' | 'sse' | 'poll' | null;
  readonly lastError: { code: string; message: string } | null;
  readonly closed: boolean;
  /** Resolves once connected; rejects with ConnectionError after `timeout` ms (default 10000; null waits forever). */
  connect(timeout?: number | null): Promise<this>;
  subscribe(topic: string): Subscription;
  /** Queued now, in call order; resolves with the gateway's ack. */
  publish(topic: string, data: unknown, options?: PublishOptions): Promise<Ack>;
  close(): Promise<void>;
  on(event: 'state', listener: (e: StateEvent) => void): this;
  on(event: 'status', listener: (e: StatusEvent) => void): this;
  once(event: 'state', listener: (e: StateEvent) => void): this;
  once(event: 'status', listener: (e: StatusEvent) => void): this;
}

/** Publishes over HTTP, for servers that only publish. */
export declare class Publisher {
  constructor(url: string, options?: PublisherOptions);
  publish(topic: string, data: unknown, options?: PublishOptions): Promise<Ack>;
  close(): void;
}

/** Every livegate error: `instanceof LivegateError`, with a `code`. */
export declare class LivegateError extends Error {
  constructor(message: string, code: string, options?: ErrorOptions);
  code: string;
}
/** The gateway could not be reached, or the network failed (`io`, `connect_timeout`). */
export declare class ConnectionError extends LivegateError {}
/** The client was closed (`closed`). */
export declare class ClosedError extends LivegateError {}
/** The gateway refused a request (`code` is the protocol's) or sent something wrong. */
export declare class ProtocolError extends LivegateError {}
/** A bad argument (`invalid`, `bad_url`, `tls`); also a TypeError. */
export declare class ArgumentError extends TypeError {
  constructor(message: string, code: string, options?: ErrorOptions);
  code: string;
}
/** Data that cannot be encoded (`bad_payload`); also a TypeError. */
export declare class PayloadError extends TypeError {
  constructor(message: string, code: string, options?: ErrorOptions);
  code: string;
}

/** The package version. */
export declare const version: string;

/* The addon's own classes and functions (bindings.js), which the API above
   is built on; generated from the Rust by napi-rs. */
