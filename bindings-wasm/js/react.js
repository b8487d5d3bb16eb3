// React hooks over a livegate Client. React is a peer dependency: this file
// imports 'react' (resolved by your bundler, or by an import map).
import { useEffect, useState } from 'react';

/**
 * The client's connection: `{ state, transport }`, re-rendered on every
 * state change.
 */
export function useConnectionState(client) {
  const read = () => ({ state: client.state, transport: client.transport });
  const [value, setValue] = useState(read);
  useEffect(() => {
    setValue(read());
    return client.on('state', () => setValue(read()));
  }, [client]);
  return value;
}

/**
 * Subscribes to `topic` while the component is mounted: `{ last, items,
 * state, recovered }` with the last publication's data, the data of the
 * last `max` publications (default 100), the connection state, and whether
 * the last resume lost nothing (`null` before any reconnect).
 */
export function useTopic(client, topic, { max = 100 } = {}) {
  const [items, setItems] = useState([]);
  const [recovered, setRecovered] = useState(null);
  const { state } = useConnectionState(client);
  useEffect(() => {
    setItems([]);
    setRecovered(null);
    const sub = client.subscribe(topic, {
      onPublication: (p) => setItems((old) => [...old, p.data].slice(-max)),
      onRecovered: (r) => setRecovered(r.recovered),
    });
    return () => sub.unsubscribe();
  }, [client, topic, max]);
  return { last: items.length ? items[items.length - 1] : undefined, items, state, recovered };
}
