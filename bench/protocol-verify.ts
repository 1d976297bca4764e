/**
 * Micro-benchmark of the verifier's protocol path: attestation parse+verify (signature, schema, key binding,
 * freshness), template JWE decrypt, and both together; plus the development signer's rate for reference.
 * Run: npx tsx bench/protocol-verify.ts [seconds-per-case]
 */
import { randomBytes } from 'node:crypto';
import { SoftwareKeyStore } from '../device/keystore/software.ts';
import { createAttestation, newAttestationId, parseAttestation } from '../protocol/attestation.ts';
import type { AttestationClaims } from '../protocol/claims.ts';
import { decodeEnvelope, encodeEnvelope } from '../protocol/envelope.ts';
import { decryptTemplate, encryptTemplate, generateFleetKeyPair } from '../protocol/jwe.ts';
import { signCompactJws, ATTESTATION_TYP } from '../protocol/jws.ts';
import type { TrustedKey } from '../protocol/trust.ts';

const seconds = Number(process.argv[2] ?? 2);
const DEVICES = 200;
const TEMPLATE_BYTES = 512; // a 128-float face embedding

/**
 * Runs `fn` for `seconds` with `concurrency` calls in flight and prints the rate. Concurrency matters for the
 * JWE path: jose does its crypto through WebCrypto, whose operations run on libuv's thread pool and overlap.
 */
async function rate(name: string, fn: (i: number) => Promise<unknown>, concurrency = 1): Promise<number> {
  for (let i = 0; i < 200; i++) await fn(i); // warm up (JIT, key cache)
  const end = performance.now() + seconds * 1000;
  const t0 = performance.now();
  let n = 0;
  const lane = async () => {
    while (performance.now() < end) await fn(n++);
  };
  await Promise.all(Array.from({ length: concurrency }, lane));
  const perSec = n / ((performance.now() - t0) / 1000);
  const label = `${name}${concurrency > 1 ? ` [${concurrency} in flight]` : ''}`;
  console.log(`${label.padEnd(58)} ${perSec.toFixed(0).padStart(7)} /s   (${(1e6 / perSec).toFixed(0)} µs each)`);
  return perSec;
}

const fleet = generateFleetKeyPair();
const registry = new Map<string, TrustedKey>();
const attestations: string[] = [];
const now = Math.floor(Date.now() / 1000);
for (let d = 0; d < DEVICES; d++) {
  const ks = SoftwareKeyStore.ephemeral();
  const ueid = `kiosk-${String(d).padStart(4, '0')}`;
  registry.set(ks.kid, { owner: ueid, key: ks.publicJwk });
  const claims: AttestationClaims = {
    ueid, iat: now, seq: 1, att_id: newAttestationId(), sub: `subject-${d}`, modality: 'face',
    template: await encryptTemplate(randomBytes(TEMPLATE_BYTES), fleet.publicJwk),
    template_format: 'biokiosk-face/1', quality: 90, model: { name: 'facenet-128', sha256: 'a'.repeat(64) },
    sensor: { make: 'Logitech', model: 'C920', serial: `SN-${d}`, firmware: '1.0' }, site: 'Lobby',
  };
  attestations.push(await createAttestation(claims, ks));
}
const envelopes = attestations.map((jws, i) => encodeEnvelope({ v: 1, kind: 'attestation', corr: newAttestationId() + String(i % 10), body: jws }));
const resolve = (kid: string) => registry.get(kid);
const pick = <T>(a: T[], i: number) => a[i % a.length] as T;

console.log(`node ${process.version}; ${DEVICES} devices; ${TEMPLATE_BYTES}-byte templates; attestation ≈ ${attestations[0]!.length} bytes; ${seconds} s per case`);
const verify = await rate('attestation parse+verify', (i) => parseAttestation(pick(attestations, i), resolve));
await rate('envelope decode + attestation parse+verify', (i) => parseAttestation(decodeEnvelope(pick(envelopes, i), 'attestation').body, resolve));
const templates = await Promise.all(attestations.slice(0, 50).map((a) => parseAttestation(a, resolve).then((p) => p.claims.template)));
await rate('template JWE decrypt', (i) => decryptTemplate(pick(templates, i), fleet.privateJwk));
await rate('template JWE decrypt', (i) => decryptTemplate(pick(templates, i), fleet.privateJwk), 32);
const boundary = async (i: number) => {
  const p = await parseAttestation(pick(attestations, i), resolve);
  return decryptTemplate(p.claims.template, fleet.privateJwk);
};
await rate('parse+verify+decrypt (whole boundary)', boundary);
await rate('parse+verify+decrypt (whole boundary)', boundary, 32);
const signer = SoftwareKeyStore.ephemeral();
await rate('software signer: sign a JWS (reference)', (i) => signCompactJws({ kid: signer.kid, typ: ATTESTATION_TYP }, { i }, signer));
console.log(verify >= 2000 ? `OK: verify ${verify.toFixed(0)}/s >= 2,000/s target` : `BELOW TARGET: verify ${verify.toFixed(0)}/s < 2,000/s`);
