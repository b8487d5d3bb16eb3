// Subscribes to `health.changes` and prints each `health_change` as it
// comes, resuming after reconnects without losing or repeating one.
//
//   npm run subscribe        (LIVEGATE_URL)
import { Client } from 'livegate';

const client = new Client(process.env.LIVEGATE_URL ?? 'http://127.0.0.1:8080');
client.on('state', (s) => console.error(`[${s.state}${s.transport ? ` over ${s.transport}` : ''}] ${s.message}`));
process.once('SIGINT', () => client.close());
process.once('SIGTERM', () => client.close());

const changes = client.subscribe('health.changes');
changes.on('recovered', (r) => {
  if (!r.recovered) console.error('some changes were missed for good (history too short or the gateway restarted)');
});
for await (const p of changes) {
  const c = p.data;
  console.log(`${p.time.toISOString()} #${p.offset} ${p.event}: ${c.service} ${c.old_status} -> ${c.new_status} (${c.detail})`);
}
