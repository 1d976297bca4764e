/**
 * A full attestation (seq, template encryption, JWS signature, fsync'd outbox enqueue) made by the kiosk's
 * Attester with the software key store and with the TPM key store (swtpm), alternating, after warm-up; p50/p99
 * for each and the difference: what the TPM adds to every attestation. Prints one JSON line.
 *   npx tsx bench/attest-worker.ts [n]
 */
import { Attester } from '../device/attester.ts';
import { openKioskState, type KioskState } from '../device/setup.ts';
import { generateFleetKeyPair } from '../protocol/jwe.ts';
import { faceTemplate, MODEL, tempDir } from '../test/helpers/e2e.ts';
import { Swtpm } from '../test/helpers/swtpm.ts';

const N = Number(process.argv[2] ?? 300);
const pct = (a: number[], p: number) => [...a].sort((x, y) => x - y)[Math.min(a.length - 1, Math.floor(a.length * p))]!;
const tpm = await Swtpm.start();
const fleet = generateFleetKeyPair();
const template = faceTemplate(1, 0.02);
const identity = { ueid: 'bench-kiosk', site: 'bench', sensor: { make: 'm', model: 'm', serial: 's', firmware: 'f' } };
const states: Record<'software' | 'tpm', KioskState> = {
  software: await openKioskState(await tempDir('bk-att-sw-'), { keyStore: { kind: 'software' } }),
  tpm: await openKioskState(await tempDir('bk-att-tpm-'), { keyStore: { kind: 'tpm', tpm: tpm.url } }),
};
const times: Record<'software' | 'tpm', number[]> = { software: [], tpm: [] };
try {
  const attesters = {
    software: new Attester(identity, states.software.keystore, fleet.publicJwk, states.software.seq, states.software.outbox),
    tpm: new Attester(identity, states.tpm.keystore, fleet.publicJwk, states.tpm.seq, states.tpm.outbox),
  };
  for (let i = 0; i < N + 20; i++) {
    for (const kind of ['software', 'tpm'] as const) {
      const t0 = performance.now();
      await attesters[kind].attest({ subject: 'alice', modality: 'face', template, templateFormat: 'biokiosk-face/1', quality: 80, model: MODEL });
      if (i >= 20) times[kind].push(performance.now() - t0);
    }
  }
} finally {
  await states.software.close();
  await states.tpm.close();
  await tpm.stop();
}
const s = (a: number[]) => ({ n: a.length, p50: pct(a, 0.5), p99: pct(a, 0.99) });
console.log(JSON.stringify({ software: s(times.software), tpm: s(times.tpm), addedP50: pct(times.tpm, 0.5) - pct(times.software, 0.5), addedP99: pct(times.tpm, 0.99) - pct(times.software, 0.99) }));
