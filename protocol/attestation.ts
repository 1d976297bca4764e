/**
 * Attestations: a device's signed statement "this template, from this sensor and model, claims to be subject S".
 * `createAttestation` runs on the kiosk; `parseAttestation` is the verifier's whole boundary check short of the
 * stateful ones (seq replay, nonce, enrolment), which need the verifier's store.
 */
import { createHash, randomUUID } from 'node:crypto';
import { AttestationClaims, describeIssues } from './claims.ts';
import { BiokioskError } from './errors.ts';
import { ATTESTATION_TYP, signCompactJws, verifyCompactJws } from './jws.ts';
import { Rejection } from './rejections.ts';
import type { Signer } from './signer.ts';
import { capturingResolver, checkFreshness, type FreshnessOptions, type TrustedKeyResolver } from './trust.ts';

/**
 * Largest attestation JWS accepted. The largest schema-valid claims (a 64 KiB template JWE plus every other
 * field at its maximum, text in 3-byte characters) come to about 92,000 bytes once base64url-encoded; a test checks it.
 */
export const MAX_ATTESTATION_BYTES = 96 * 1024;

/** A new unique attestation id (UUID v4). */
export function newAttestationId(): string {
  return randomUUID();
}

/** base64url SHA-256 of the compact JWS exactly as sent: what a verdict's `att_hash` names. */
export function attestationHash(jws: string | Uint8Array): string {
  return createHash('sha256').update(typeof jws === 'string' ? Buffer.from(jws, 'utf8') : jws).digest('base64url');
}

export async function createAttestation(claims: AttestationClaims, signer: Signer): Promise<string> {
  const checked = AttestationClaims.safeParse(claims);
  if (!checked.success) throw new BiokioskError('BadClaims', `attestation claims do not follow the schema: ${describeIssues(checked.error)}`);
  const jws = await signCompactJws({ kid: signer.kid, typ: ATTESTATION_TYP }, checked.data, signer);
  if (jws.length > MAX_ATTESTATION_BYTES) throw new BiokioskError('AttestationTooLarge', `the attestation is ${jws.length} bytes; at most ${MAX_ATTESTATION_BYTES}`);
  return jws;
}

export interface AuthenticateOptions {
  maxBytes?: number;
  /** The device id the message arrived for (from its topic); the claims must name the same device. */
  expectedUeid?: string;
  /** The correlation id of the envelope it came in; the signed att_id must be the same. */
  expectedAttId?: string;
}

export interface ParseAttestationOptions extends FreshnessOptions, AuthenticateOptions {}

export interface ParsedAttestation {
  claims: AttestationClaims;
  /** The signing key's kid (RFC 7638 thumbprint). */
  kid: string;
  /** `attestationHash` of the input, for the verdict. */
  hash: string;
}

/**
 * Everything that proves a registered, unrevoked device sent this message as it stands: size, structure,
 * signature, claims schema, key ownership, revocation, the topic it came on and the envelope's correlation id.
 * A message that fails here was not (as it arrived) sent by any device we trust: nothing may be bound to its
 * claims. Throws a `Rejection` naming the first check that failed.
 */
export async function authenticateAttestation(jws: string | Uint8Array, resolveKey: TrustedKeyResolver, opts: AuthenticateOptions = {}): Promise<ParsedAttestation> {
  const trust = capturingResolver(resolveKey);
  const { header, payload } = await verifyCompactJws(jws, trust.resolveKey, { maxBytes: opts.maxBytes ?? MAX_ATTESTATION_BYTES, typ: ATTESTATION_TYP });
  const parsed = AttestationClaims.safeParse(payload);
  if (!parsed.success) throw new Rejection('malformed', `Attestation claims: ${describeIssues(parsed.error)}.`, { details: { issues: parsed.error.issues.slice(0, 5) } });
  const claims = parsed.data;
  const owner = trust.found();
  if (!owner || owner.owner !== claims.ueid) {
    throw new Rejection('unknown_device', `Key ${header.kid} is not registered to device ${claims.ueid}.`, { details: { kid: header.kid, ueid: claims.ueid } });
  }
  if (owner.revoked) throw new Rejection('revoked_device', `Device ${claims.ueid} (key ${header.kid}) is revoked.`, { details: { ueid: claims.ueid } });
  if (opts.expectedUeid !== undefined && opts.expectedUeid !== claims.ueid) {
    throw new Rejection('malformed', `The attestation names device ${claims.ueid} but arrived on the topic of ${opts.expectedUeid}.`);
  }
  if (opts.expectedAttId !== undefined && opts.expectedAttId !== claims.att_id) {
    throw new Rejection('malformed', `The envelope's correlation id ${opts.expectedAttId} is not the attestation's att_id ${claims.att_id}.`);
  }
  return { claims, kid: header.kid, hash: attestationHash(jws) };
}

/** `authenticateAttestation`, then the `iat` window. */
export async function parseAttestation(jws: string | Uint8Array, resolveKey: TrustedKeyResolver, opts: ParseAttestationOptions = {}): Promise<ParsedAttestation> {
  const parsed = await authenticateAttestation(jws, resolveKey, opts);
  checkFreshness(parsed.claims.iat, opts);
  return parsed;
}
