/**
 * A compromised kiosk flooding its own attestation topic (bench/hostile-worker.ts runs it as a separate process):
 * `count` junk messages of four kinds, as fast as one mqtt.js client sends them (QoS 1, not awaited one by one).
 * Prints one JSON line per flood: how many were sent, acknowledged and refused by the broker, in how many milliseconds
 * (until the last acknowledgement, or until the broker dropped the connection), and whether it was dropped.
 *   node --import tsx bench/junk-publisher.ts '<json>'
 */
import { readFileSync } from 'node:fs';
import mqtt from 'mqtt';
import { encodeBase64url } from '../protocol/base64url.ts';
import { encodeEnvelope } from '../protocol/envelope.ts';

const cfg = JSON.parse(process.argv[2]!) as { url: string; ca: string; cert: string; key: string; ueid: string; kid: string; count: number };
const topic = `biokiosk/v1/${cfg.ueid}/attestations`;
const junk = (i: number): Buffer => {
  const attId = `junk-${String(i).padStart(16, '0')}`;
  switch (i % 4) {
    case 0:
      return Buffer.from(`not json ${i}`);
    case 1: // the header poison, under the device's own kid: passes the intake's cheap test
      return encodeEnvelope({ v: 1, kind: 'attestation', corr: attId, body: `${encodeBase64url(JSON.stringify({ alg: 'ES256', kid: cfg.kid, typ: 'biokiosk-att+jws', '\u0001': i }))}.${encodeBase64url(JSON.stringify({ att_id: attId, ueid: cfg.ueid }))}.${encodeBase64url(new Uint8Array(64))}` });
    case 2: // shaped right, signature wrong: costs a verification until the failure budget runs out
      return encodeEnvelope({ v: 1, kind: 'attestation', corr: attId, body: `${encodeBase64url(JSON.stringify({ alg: 'ES256', kid: cfg.kid, typ: 'biokiosk-att+jws' }))}.${encodeBase64url(JSON.stringify({ att_id: attId, ueid: cfg.ueid, seq: i + 1 }))}.${encodeBase64url(new Uint8Array(64).fill(i & 0xff))}` });
    default: // another device's name in the claims
      return encodeEnvelope({ v: 1, kind: 'attestation', corr: attId, body: `${encodeBase64url(JSON.stringify({ alg: 'ES256', kid: cfg.kid, typ: 'biokiosk-att+jws' }))}.${encodeBase64url(JSON.stringify({ att_id: attId, ueid: 'someone-else' }))}.AAAA` });
  }
};
process.stdin.on('data', async () => {
  // One flood per line on stdin, each on a fresh connection (a quarantine drops it): the parent decides when.
  const client = await mqtt.connectAsync(cfg.url, { protocolVersion: 5, ca: readFileSync(cfg.ca), cert: readFileSync(cfg.cert), key: readFileSync(cfg.key), rejectUnauthorized: true, reconnectPeriod: 0 });
  const t0 = performance.now();
  let accepted = 0;
  let refused = 0;
  let sent = 0;
  // What the broker acknowledged or refused; once the broker drops the connection, the rest will never be.
  const settled = new Promise<void>((resolve) => {
    const check = () => accepted + refused === cfg.count && resolve();
    client.once('close', () => resolve());
    for (let i = 0; i < cfg.count && client.connected; i++) {
      sent++;
      client.publishAsync(topic, junk(i), { qos: 1 }).then(
        () => (accepted++, check()),
        () => (refused++, check()),
      );
    }
  });
  await settled;
  const ms = performance.now() - t0;
  // Whether the broker dropped the connection before answering everything (a quarantine, or its rate limit).
  const cutOff = !client.connected;
  client.end(true);
  process.stdout.write(JSON.stringify({ sent, accepted, refused, ms, cutOff }) + '\n');
});
process.stdout.write('ready\n');
