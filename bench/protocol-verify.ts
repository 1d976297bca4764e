/**
 * Micro-benchmark of the verifier's protocol path: attestation parse+verify (signature, schema, key binding,
 * freshness), template JWE decrypt, and both together; plus the development signer's rate for reference.
 * Template decryption is measured for both paths, one case at a time: the fast one (node:crypto, synchronous;
 * what decryptTemplate uses) and jose's (WebCrypto; decryptTemplateWithJose), and the two ECDH primitives the
 * fast path could use.
 * Run: npx tsx bench/protocol-verify.ts [seconds-per-case]
 */
import { createECDH, createPrivateKey, createPublicKey, diffieHellman, randomBytes, type JsonWebKey } from 'node:crypto';
import { SoftwareKeyStore } from '../device/keystore/software.ts';
import { createAttestation, newAttestationId, parseAttestation } from '../protocol/attestation.ts';
import type { AttestationClaims } from '../protocol/claims.ts';
import { decodeEnvelope, encodeEnvelope } from '../protocol/envelope.ts';
import { decryptTemplate, decryptTemplateSync, decryptTemplateWithJose, generateFleetKeyPair } from '../protocol/jwe.ts';
import { newReplyKey, sealContent } from '../protocol/sealed.ts';
import { parseTemplateJwe } from '../protocol/jwe-fast.ts';
import { signCompactJws, ATTESTATION_TYP } from '../protocol/jws.ts';
import type { TrustedKey } from '../protocol/trust.ts';

const seconds = Number(process.argv[2] ?? 2);
const DEVICES = 200;
const TEMPLATE_BYTES = 512; // a 128-float face embedding

/**
 * Runs `fn` for `seconds` with `concurrency` calls in flight and prints the rate. Concurrency matters for the
 * JWE path: jose does its crypto through WebCrypto, whose operations run on libuv's thread pool and overlap.
 */
async function rate(name: string, fn: (i: number) => unknown, concurrency = 1): Promise<number> {
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
  const att_id = newAttestationId();
  const claims: AttestationClaims = {
    ueid, iat: now, seq: 1, att_id, modality: 'face',
    sealed: await sealContent({ attId: att_id, subject: `subject-${d}`, site: 'Lobby', quality: 90, template: randomBytes(TEMPLATE_BYTES) }, fleet.publicJwk, newReplyKey()),
    template_format: 'biokiosk-face/1', model: { name: 'facenet-128', sha256: 'a'.repeat(64) },
    sensor: { make: 'Logitech', model: 'C920', serial: `SN-${d}`, firmware: '1.0' },
  };
  attestations.push(await createAttestation(claims, ks));
}
const envelopes = attestations.map((jws, i) => encodeEnvelope({ v: 1, kind: 'attestation', corr: newAttestationId() + String(i % 10), body: jws }));
const resolve = (kid: string) => registry.get(kid);
const pick = <T>(a: T[], i: number) => a[i % a.length] as T;

console.log(`node ${process.version}; ${DEVICES} devices; ${TEMPLATE_BYTES}-byte templates; attestation ≈ ${attestations[0]!.length} bytes; ${seconds} s per case`);
const verify = await rate('attestation parse+verify', (i) => parseAttestation(pick(attestations, i), resolve));
await rate('envelope decode + attestation parse+verify', (i) => parseAttestation(decodeEnvelope(pick(envelopes, i), 'attestation').body, resolve));
const templates = await Promise.all(attestations.slice(0, 50).map((a) => parseAttestation(a, resolve).then((p) => p.claims.sealed)));
// Template decryption, fast path vs jose, one case at a time.
const decryptFast = await rate('template JWE decrypt: fast (node:crypto)', (i) => decryptTemplate(pick(templates, i), fleet.privateJwk));
await rate('template JWE decrypt: fast, sync (decryptTemplateSync)', (i) => decryptTemplateSync(pick(templates, i), fleet.privateJwk));
const decryptJose = await rate('template JWE decrypt: jose', (i) => decryptTemplateWithJose(pick(templates, i), fleet.privateJwk));
const decryptJose32 = await rate('template JWE decrypt: jose', (i) => decryptTemplateWithJose(pick(templates, i), fleet.privateJwk), 32);

// The ECDH step alone: createECDH with the private scalar (what the fast path uses) vs diffieHellman on KeyObjects,
// which needs the epk imported as a KeyObject per message.
const epks = templates.map((t) => parseTemplateJwe(t).epk);
const epkJwks = templates.map((t) => {
  const point = parseTemplateJwe(t).epk;
  return { kty: 'EC', crv: 'P-256', x: point.subarray(1, 33).toString('base64url'), y: point.subarray(33).toString('base64url') } as JsonWebKey;
});
const ecdh = createECDH('prime256v1');
ecdh.setPrivateKey(Buffer.from(fleet.privateJwk.d!, 'base64url'));
const fleetKeyObject = createPrivateKey({ key: fleet.privateJwk, format: 'jwk' });
await rate('ECDH only: createECDH().computeSecret(point)', (i) => ecdh.computeSecret(pick(epks, i)));
await rate('ECDH only: diffieHellman(KeyObjects) + epk import', (i) =>
  diffieHellman({ privateKey: fleetKeyObject, publicKey: createPublicKey({ key: pick(epkJwks, i), format: 'jwk' }) }),
);

const boundary = (decrypt: typeof decryptTemplate) => async (i: number) => {
  const p = await parseAttestation(pick(attestations, i), resolve);
  return decrypt(p.claims.sealed, fleet.privateJwk);
};
const whole = await rate('parse+verify+decrypt (whole boundary), fast decrypt', boundary(decryptTemplate));
await rate('parse+verify+decrypt (whole boundary), fast decrypt', boundary(decryptTemplate), 32);
await rate('parse+verify+decrypt (whole boundary), jose decrypt', boundary(decryptTemplateWithJose));
await rate('parse+verify+decrypt (whole boundary), jose decrypt', boundary(decryptTemplateWithJose), 32);
const signer = SoftwareKeyStore.ephemeral();
await rate('software signer: sign a JWS (reference)', (i) => signCompactJws({ kid: signer.kid, typ: ATTESTATION_TYP }, { i }, signer));
console.log(`template decrypt: fast ${decryptFast.toFixed(0)}/s vs jose ${decryptJose.toFixed(0)}/s (${Math.max(decryptJose, decryptJose32).toFixed(0)}/s at best with 32 in flight): ${(decryptFast / Math.max(decryptJose, decryptJose32)).toFixed(1)}x`);
console.log(verify >= 2000 ? `OK: verify ${verify.toFixed(0)}/s >= 2,000/s target` : `BELOW TARGET: verify ${verify.toFixed(0)}/s < 2,000/s`);
console.log(whole >= 2000 ? `OK: verify+decrypt ${whole.toFixed(0)}/s >= 2,000/s target` : `BELOW TARGET: verify+decrypt ${whole.toFixed(0)}/s < 2,000/s`);
