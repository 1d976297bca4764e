/**
 * A kiosk as a separate process, for the reliability tests: attests synthetic face templates until its seq
 * counter reaches `total`, relays until its outbox is empty, prints `enqueued <attId>` after each enqueue has
 * returned (so the test knows what the kiosk has promised to deliver) and `drained` at the end; then idles.
 *   node --import tsx test/helpers/kiosk-process.ts '<json config>'
 */
import { Attester } from '../../device/attester.ts';
import { Relay } from '../../device/relay.ts';
import { openKioskState } from '../../device/setup.ts';
import { verdictChecker } from '../../device/verdicts.ts';
import { deviceTopics } from '../../protocol/topics.ts';
import { faceTemplate, MODEL } from './e2e.ts';

const cfg = JSON.parse(process.argv[2]!) as { dir: string; brokerUrl: string; ueid: string; total: number; fleetPublicJwk: object; verifierId: string; verifierPublicJwk: object };
const state = await openKioskState(cfg.dir, { outbox: { backoff: { baseMs: 1500, maxMs: 5000 } }, keyStore: { kind: 'software' } });
const attester = new Attester({ ueid: cfg.ueid, site: 'reliability', sensor: { make: 'biokiosk', model: 'synthetic', serial: cfg.ueid, firmware: '1' } }, state.keystore, cfg.fleetPublicJwk as never, state.seq, state.outbox);
const t = deviceTopics(cfg.ueid);
const relay = new Relay({
  brokerUrl: cfg.brokerUrl,
  clientId: cfg.ueid,
  ueid: cfg.ueid,
  version: 'test',
  topics: { attestations: t.attestations, verdicts: t.verdicts },
  outbox: state.outbox,
  protocolVersion: 5,
  ...verdictChecker(cfg.ueid, [{ id: cfg.verifierId, publicJwk: cfg.verifierPublicJwk as never }]),
});
relay.start();
const out = (s: string) => process.stdout.write(s + '\n');
for (;;) {
  const a = await attester.attest({ subject: 'alice', modality: 'face', template: faceTemplate(1, 0.03), templateFormat: 'biokiosk-face/1', quality: 80, model: MODEL });
  out(`enqueued ${a.attId}`);
  relay.nudge();
  if (a.seq >= cfg.total) break;
  // Let the relay run between attestations (a kiosk attests far slower than this in real life).
  if (a.seq % 20 === 0) await new Promise((r) => setImmediate(r));
}
while (state.outbox.size.entries > 0) await new Promise((r) => setTimeout(r, 50));
out('drained');
setInterval(() => {}, 1 << 30);
