// Types of livegate's browser client (index.js).

export type State = 'disconnected' | 'connecting' | 'connected' | 'reconnecting' | 'closed';
export type Transport = 'wt' | 'ws' | 'sse' | 'poll';

export interface Position { epoch: string; offset: number }

export interface ClientOptions {
  /** Transports in order of preference; default `['wt', 'ws', 'sse', 'poll']`. */
  transports?: Transport[];
  /** Frames on WebSocket and WebTransport; default `msgpack`. */
  encoding?: 'json' | 'msgpack';
  backoffMinMs?: number;
  backoffMaxMs?: number;
  connectTimeoutMs?: number;
  heartbeatMarginMs?: number;
  pollTimeoutMs?: number;
  transportRetryMs?: number;
  upgradeProbeMs?: number;
  offlineQueue?: number;
  /** `Authorization: Bearer` on SSE, long-poll and discovery requests (a browser WebSocket cannot send headers). */
  token?: string;
  /** `Authorization: Bearer` on HTTP publishes. */
  apiKey?: string;
}

export interface Publication {
  type: 'publication';
  topic: string;
  epoch: string;
  offset: number;
  /** The JSON value published, or a Uint8Array for binary payloads. */
  data: unknown;
  /** Milliseconds since the Unix epoch when the gateway accepted it. */
  time: number;
  event?: string;
}

export interface Subscribed { type: 'subscribed'; epoch: string; offset: number }
export interface Recovered { type: 'recovered'; recovered: boolean; epoch: string; offset: number }

export interface StateChange {
  type: 'state';
  from: State;
  to: State;
  /** `opened`, `connection_lost`, `heartbeat_timeout`, `upgrade_probe`, `app_close`, ... */
  reason: string;
  message: string;
  transport?: Transport;
}

export interface RecoveredEvent { topic: string; recovered: boolean; epoch: string; offset: number }
export interface ErrorEvent { code: string; message: string }

export interface SubscribeOptions {
  /** Resume after this publication (a position kept from an earlier session). */
  since?: Position;
  onPublication?: (p: Publication) => void;
  onSubscribed?: (s: Subscribed) => void;
  /** After every reconnect; `recovered: false` means publications were missed. */
  onRecovered?: (r: Recovered) => void;
  /** The gateway refused the subscription. */
  onError?: (e: LivegateError) => void;
}

export interface Ack { msgId: string; topic: string; epoch: string; offset: number }

export class LivegateError extends Error {
  readonly code: string;
}

export class Subscription implements AsyncIterable<Publication> {
  readonly topic: string;
  /** The last publication seen, or null. */
  readonly position: Position | null;
  unsubscribe(): void;
  [Symbol.asyncIterator](): AsyncIterator<Publication>;
}

export class Client {
  /** `url`: the gateway's HTTP URL, or a path of the page's origin (`/`). */
  constructor(url: string, options?: ClientOptions);
  readonly state: State;
  readonly transport: Transport | undefined;
  on(name: 'state', fn: (e: StateChange) => void): () => void;
  on(name: 'recovered', fn: (e: RecoveredEvent) => void): () => void;
  on(name: 'error', fn: (e: ErrorEvent) => void): () => void;
  subscribe(topic: string, options?: SubscribeOptions): Subscription;
  publish(topic: string, data: unknown, options?: { event?: string }): Promise<Ack>;
  close(): Promise<void>;
}
