/**
 * A kiosk as a separate process, for the reliability tests: attests synthetic face templates until its seq
 * counter reaches `total`, relays until its outbox is empty, prints `enqueued <attId>` after each enqueue has
 * returned (so the test knows what the kiosk has promised to deliver) and `drained` at the end; then idles.
 *   node --import tsx test/helpers/kiosk-process.ts '<json config>'
 */
import { Kiosk } from '../../device/kiosk.ts';
import { faceTemplate, MODEL } from './e2e.ts';

const cfg = JSON.parse(process.argv[2]!) as { dir: string; brokerUrl: string; ueid: string; total: number; fleetPublicJwk: object; verifierId: string; verifierPublicJwk: object; logKeys: string[]; witnesses?: string[]; site?: string };
const kiosk = await Kiosk.create({
  dir: cfg.dir,
  ueid: cfg.ueid,
  site: cfg.site ?? 'reliability',
  version: 'test',
  keyStore: { kind: 'software' },
  verifiers: { trusted: [{ id: cfg.verifierId, publicJwk: cfg.verifierPublicJwk as never }], fleetKey: cfg.fleetPublicJwk as never, log: { keys: cfg.logKeys, witnesses: cfg.witnesses ?? [] } },
  broker: { url: cfg.brokerUrl, protocolVersion: 5 },
  outbox: { backoff: { baseMs: 1500, maxMs: 5000 } },
});
const out = (s: string) => process.stdout.write(s + '\n');
// Each accepted verdict (its receipt checked against the log's keys and the configured witnesses).
kiosk.on('verdict', (v) => out(`verdict ${v.attId} ${v.decision} ${v.claims.receipt.treeSize}`));
kiosk.on('alarm', (a) => out(`alarm ${JSON.stringify(a)}`));
for (;;) {
  const a = await kiosk.attest({ subject: 'alice', modality: 'face', template: faceTemplate(1, 0.03), templateFormat: 'biokiosk-face/1', quality: 80, model: MODEL });
  out(`enqueued ${a.attId}`);
  if (a.seq >= cfg.total) break;
  // Let the relay run between attestations (a kiosk attests far slower than this in real life).
  if (a.seq % 20 === 0) await new Promise((r) => setImmediate(r));
}
while (kiosk.state.outbox.size.entries > 0) await new Promise((r) => setTimeout(r, 50));
out('drained');
setInterval(() => {}, 1 << 30);
