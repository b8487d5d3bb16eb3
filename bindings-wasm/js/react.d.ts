import type { Client, State, Transport } from './index.js';

export function useConnectionState(client: Client): { state: State; transport: Transport | undefined };

export function useTopic<T = unknown>(
  client: Client,
  topic: string,
  options?: { max?: number },
): { last: T | undefined; items: T[]; state: State; recovered: boolean | null };
