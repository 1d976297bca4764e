/**
 * Enrolment of a kiosk with the fleet's registry (`biokiosk provision`), and what follows in its life (key
 * rotation, decommissioning): the messages, as zod schemas. The same messages travel over HTTPS (online) or as
 * files a technician carries (offline), then signed as compact JWS (`typ: biokiosk-enroll+jws`): requests by the
 * kiosk's attestation key, the registry's answers by the verifier's verdict key.
 *
 * The identity is proven by the TPM, in the manner of Keylime's registrar: the kiosk sends its EK certificate and
 * the public areas of an identity key (restricted signing, endorsement hierarchy) and of its attestation key; the
 * registry checks the EK certificate's chain, answers with a credential only that TPM can recover for that
 * identity key (MakeCredential) and a nonce; the kiosk recovers it (ActivateCredential), proves it (an HMAC),
 * and has the identity key certify the attestation key over the nonce (TPM2_Certify). A kiosk with a software key
 * store sends none of that and is accepted only where the fleet allows development devices.
 */
import { createCipheriv, createDecipheriv, hkdfSync, randomBytes } from 'node:crypto';
import { z } from 'zod';
import { DeviceId } from './claims.ts';
import { BiokioskError } from './errors.ts';
import { ENROLL_TYP, signCompactJws, verifyCompactJws } from './jws.ts';
import { jwkThumbprint, p256PublicJwk, type Signer } from './signer.ts';
import { Rejection } from './rejections.ts';

const b64u = (max: number) => z.string().max(max).regex(/^[A-Za-z0-9_-]*$/, 'must be base64url without padding');
const text = (max: number) =>
  z
    .string()
    .min(1)
    .max(max)
    .regex(/^[^\u0000-\u001f\u007f]*$/, 'must not contain control characters');

export const ENROLL_VERSION = 1;

/** The fleet's public keys, as `biokiosk verifier keys` prints them. */
export const FleetKeys = z.object({
  verifierId: DeviceId,
  verdictKey: z.record(z.string(), z.unknown()),
  fleetKey: z.record(z.string(), z.unknown()),
  log: z.object({ origin: text(256), keys: z.array(text(256)).min(1).max(8) }),
});
export type FleetKeys = z.infer<typeof FleetKeys>;

export const P256Jwk = z.strictObject({ kty: z.literal('EC'), crv: z.literal('P-256'), x: b64u(43), y: b64u(43) });

/** What the kiosk's TPM says about itself (the registry checks every part). */
export const TpmEvidence = z.strictObject({
  /** DER, base64url. */
  ekCertificate: b64u(8192),
  /** TPMT_PUBLIC of the identity key (restricted ECDSA P-256 signing key, endorsement hierarchy). */
  identityKeyPublic: b64u(1024),
  /** TPMT_PUBLIC of the attestation key. */
  attestationKeyPublic: b64u(1024),
  manufacturer: text(64),
  firmwareVersion: text(64),
});
export type TpmEvidence = z.infer<typeof TpmEvidence>;

export const EnrollRequest = z.strictObject({
  v: z.literal(ENROLL_VERSION),
  kind: z.literal('enroll_request'),
  token: z.string().min(16).max(128).regex(/^[A-Za-z0-9_-]+$/),
  site: text(128),
  /** The kiosk's clock, milliseconds (the registry refuses one too far off). */
  at: z.int().nonnegative(),
  publicJwk: P256Jwk,
  keyStore: z.enum(['tpm', 'software']),
  tpm: TpmEvidence.optional(),
});
export type EnrollRequest = z.infer<typeof EnrollRequest>;

export const EnrollChallenge = z.strictObject({
  v: z.literal(ENROLL_VERSION),
  kind: z.literal('enroll_challenge'),
  enrollmentId: z.string().regex(/^[A-Za-z0-9_-]{16,64}$/),
  /** TPM2_ActivateCredential's inputs (absent for a development device). */
  credentialBlob: b64u(1024).optional(),
  secret: b64u(1024).optional(),
  /** Qualifying data for TPM2_Certify (and what a development device signs). */
  nonce: b64u(64),
  expiresAt: z.int().nonnegative(),
  registryTime: z.int().nonnegative(),
});
export type EnrollChallenge = z.infer<typeof EnrollChallenge>;

export const EnrollProof = z.strictObject({
  v: z.literal(ENROLL_VERSION),
  kind: z.literal('enroll_proof'),
  enrollmentId: z.string().regex(/^[A-Za-z0-9_-]{16,64}$/),
  /** HMAC-SHA256(credential, "biokiosk-enroll/1" || enrollmentId || nonce), base64url (TPM devices). */
  activation: b64u(43).optional(),
  /** TPM2_Certify of the attestation key by the identity key over the nonce (TPM devices). */
  certify: z.strictObject({ attest: b64u(1024), signature: b64u(86) }).optional(),
});
export type EnrollProof = z.infer<typeof EnrollProof>;

/** The broker identity issued to the device: a password login on the fleet broker's TLS password listener. */
export const BrokerGrant = z.strictObject({
  url: text(256),
  username: DeviceId,
  /** The password, sealed (AES-256-GCM, base64url iv.ciphertext.tag) under a key derived from the credential only the TPM recovered; in clear for a development device. */
  password: z.string().min(16).max(512),
  sealed: z.boolean(),
});
export type BrokerGrant = z.infer<typeof BrokerGrant>;

export const EnrollAnswer = z.strictObject({
  v: z.literal(ENROLL_VERSION),
  kind: z.literal('enroll_answer'),
  ueid: DeviceId,
  site: text(128),
  kid: z.string().min(1).max(128),
  evidence: z.enum(['tpm', 'development']),
  broker: BrokerGrant,
  fleet: FleetKeys,
  registryTime: z.int().nonnegative(),
});
export type EnrollAnswer = z.infer<typeof EnrollAnswer>;

/** Key rotation: the registry's nonce, then the new key certified by the same identity key, endorsed by the old. */
export const RotateRequest = z.strictObject({
  v: z.literal(ENROLL_VERSION),
  kind: z.literal('rotate_request'),
  ueid: DeviceId,
  at: z.int().nonnegative(),
});
export type RotateRequest = z.infer<typeof RotateRequest>;
export const RotateChallenge = z.strictObject({
  v: z.literal(ENROLL_VERSION),
  kind: z.literal('rotate_challenge'),
  rotationId: z.string().regex(/^[A-Za-z0-9_-]{16,64}$/),
  nonce: b64u(64),
  expiresAt: z.int().nonnegative(),
});
export const RotateProof = z.strictObject({
  v: z.literal(ENROLL_VERSION),
  kind: z.literal('rotate_proof'),
  rotationId: z.string().regex(/^[A-Za-z0-9_-]{16,64}$/),
  ueid: DeviceId,
  newPublicJwk: P256Jwk,
  identityKeyPublic: b64u(1024),
  attestationKeyPublic: b64u(1024),
  certify: z.strictObject({ attest: b64u(1024), signature: b64u(86) }),
  /** The new key's compact JWS over this same proof's other members, so the new key proves possession too. */
  newKeySignature: z.string().max(4096),
});
export type RotateProof = z.infer<typeof RotateProof>;
export type RotateChallenge = z.infer<typeof RotateChallenge>;
export const RotateAnswer = z.strictObject({ v: z.literal(ENROLL_VERSION), kind: z.literal('rotate_answer'), ueid: DeviceId, kid: z.string().min(1).max(128), at: z.int().nonnegative() });
export type RotateAnswer = z.infer<typeof RotateAnswer>;

export const DecommissionRequest = z.strictObject({ v: z.literal(ENROLL_VERSION), kind: z.literal('decommission_request'), ueid: DeviceId, at: z.int().nonnegative(), reason: text(256) });
export type DecommissionRequest = z.infer<typeof DecommissionRequest>;
export const DecommissionAnswer = z.strictObject({ v: z.literal(ENROLL_VERSION), kind: z.literal('decommission_answer'), ueid: DeviceId, revokedAt: z.int().nonnegative() });
export type DecommissionAnswer = z.infer<typeof DecommissionAnswer>;

/** The bytes the activation HMAC covers. */
export function activationInput(enrollmentId: string, nonce: Uint8Array): Buffer {
  return Buffer.concat([Buffer.from(`biokiosk-enroll/1\u0000${enrollmentId}\u0000`, 'utf8'), nonce]);
}

/** A registry error, as the HTTPS body of a 4xx/5xx. */
export const RegistryError = z.strictObject({ error: z.strictObject({ code: z.string().max(64), message: z.string().max(1024), retryable: z.boolean() }) });
export type RegistryError = z.infer<typeof RegistryError>;

/** Largest enrolment message (an EK certificate is the bulk). */
export const MAX_ENROLL_BYTES = 32 * 1024;

export class EnrollmentError extends BiokioskError {
  constructor(
    code: string,
    message: string,
    /** Worth trying again as it is (the broker was down, the registry busy); otherwise something must change. */
    readonly retryable = false,
    readonly status = 400,
  ) {
    super(code, message, { kind: 'input' });
  }
}

/** Signs an enrolment message. */
export function signEnrollment(message: object, signer: Signer): Promise<string> {
  return signCompactJws({ kid: signer.kid, typ: ENROLL_TYP }, message, signer);
}

/**
 * Opens an enrolment message: its JWS verified with `key` (or, for a request that carries its own key, with
 * that key: `selfKey` names the payload member) and its payload checked against `schema`.
 */
export async function openEnrollment<T>(jws: string, schema: z.ZodType<T>, key: { publicJwk: Record<string, unknown> } | { selfKey: (payload: unknown) => unknown }, what: string): Promise<{ message: T; kid: string }> {
  let payload: unknown;
  let kid: string;
  try {
    const v = await verifyCompactJws(jws, (k) => {
      kid = k;
      const jwk = 'publicJwk' in key ? key.publicJwk : selfJwk(jws, key.selfKey);
      if (!jwk) return undefined;
      const pub = p256PublicJwk(jwk);
      return jwkThumbprint(pub) === k ? (pub as never) : undefined;
    }, { maxBytes: MAX_ENROLL_BYTES, typ: ENROLL_TYP });
    payload = v.payload;
    kid = v.header.kid;
  } catch (e) {
    if (e instanceof Rejection) throw new EnrollmentError('BadSignature', `the ${what} is not signed by the key it should be (${e.message})`, false, 403);
    throw new EnrollmentError('BadMessage', `the ${what} is not a signed enrolment message: ${(e as Error).message}`);
  }
  const parsed = schema.safeParse(payload);
  if (!parsed.success) throw new EnrollmentError('BadMessage', `the ${what} does not follow the protocol: ${parsed.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ').slice(0, 400)}`);
  return { message: parsed.data, kid: kid! };
}

function selfJwk(jws: string, pick: (payload: unknown) => unknown): Record<string, unknown> | undefined {
  try {
    const payload = JSON.parse(Buffer.from(jws.split('.')[1] ?? '', 'base64url').toString('utf8')) as unknown;
    const jwk = pick(payload);
    return jwk && typeof jwk === 'object' ? (jwk as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

/** The key the broker password is sealed under: only the registry and the TPM that recovered the credential have it. */
function passwordKey(credential: Uint8Array, enrollmentId: string): Buffer {
  return Buffer.from(hkdfSync('sha256', credential, Buffer.from(enrollmentId, 'utf8'), Buffer.from('biokiosk-broker-password/1', 'utf8'), 32));
}

export function sealPassword(password: string, credential: Uint8Array, enrollmentId: string): string {
  const iv = randomBytes(12);
  const c = createCipheriv('aes-256-gcm', passwordKey(credential, enrollmentId), iv);
  const ct = Buffer.concat([c.update(password, 'utf8'), c.final()]);
  return [iv, ct, c.getAuthTag()].map((b) => b.toString('base64url')).join('.');
}

export function openPassword(sealed: string, credential: Uint8Array, enrollmentId: string): string {
  const [iv, ct, tag] = sealed.split('.').map((p) => Buffer.from(p, 'base64url'));
  if (!iv || !ct || !tag || iv.length !== 12 || tag.length !== 16) throw new EnrollmentError('BadAnswer', "the registry's answer carries a sealed broker password that is not iv.ciphertext.tag");
  try {
    const d = createDecipheriv('aes-256-gcm', passwordKey(credential, enrollmentId), iv);
    d.setAuthTag(tag);
    return Buffer.concat([d.update(ct), d.final()]).toString('utf8');
  } catch {
    throw new EnrollmentError('BadAnswer', "the broker password in the registry's answer does not open with this TPM's credential");
  }
}
