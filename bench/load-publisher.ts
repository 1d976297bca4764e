/**
 * Kiosks publishing pre-made attestations for bench/hostile-worker.ts, in a process of their own so their TLS
 * work is not charged to the verifier's event loop: one connection per device (each under its own certificate
 * on a fleet broker), all published at once (QoS 1) on each line read from stdin. Prints `ready`, then one JSON
 * line per round.
 *   node --import tsx bench/load-publisher.ts '<json config>'   (config: url, pki dir or none, messages file)
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import mqtt, { type MqttClient } from 'mqtt';

const cfg = JSON.parse(process.argv[2]!) as { url: string; pki: string | null; rounds: string[] };
let round = 0;
const connect = (ueid: string): Promise<MqttClient> =>
  mqtt.connectAsync(cfg.url, {
    protocolVersion: 5,
    clientId: ueid,
    reconnectPeriod: 0,
    ...(cfg.pki ? { ca: readFileSync(join(cfg.pki, 'ca.pem')), cert: readFileSync(join(cfg.pki, 'devices', `${ueid}.pem`)), key: readFileSync(join(cfg.pki, 'devices', `${ueid}.key`)), rejectUnauthorized: true } : {}),
  });
const clients = new Map<string, MqttClient>();
process.stdin.on('data', async () => {
  const msgs = JSON.parse(readFileSync(cfg.rounds[round++]!, 'utf8')) as Array<{ ueid: string; topic: string; payload: string }>;
  for (const m of msgs) if (!clients.has(m.ueid)) clients.set(m.ueid, await connect(m.ueid));
  const t0 = performance.now();
  await Promise.all(msgs.map((m) => clients.get(m.ueid)!.publishAsync(m.topic, Buffer.from(m.payload, 'base64'), { qos: 1 })));
  process.stdout.write(JSON.stringify({ sent: msgs.length, ms: performance.now() - t0 }) + '\n');
});
process.stdout.write('ready\n');
