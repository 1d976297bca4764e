/**
 * Verdicts: a verifier's signed answer to one attestation (named by att_id and att_hash), with the audit-log
 * receipt. `createVerdict` runs on the verifier; `parseVerdict` on the kiosk before it drops the attestation
 * from its outbox.
 */
import { createHash } from 'node:crypto';
import { describeIssues, VerdictClaims } from './claims.ts';
import { BiokioskError } from './errors.ts';
import { signCompactJws, VERDICT_TYP, verifyCompactJws } from './jws.ts';
import { Rejection } from './rejections.ts';
import type { Signer } from './signer.ts';
import { capturingResolver, checkFreshness, type FreshnessOptions, type TrustedKeyResolver } from './trust.ts';

/**
 * Largest verdict JWS accepted: the largest schema-valid verdict (16 reasons of 512 3-byte characters, a receipt
 * with its log entry, a 64-hash inclusion proof and a 128-hash consistency proof) is about 50,000 bytes; a test
 * checks it.
 */
export const MAX_VERDICT_BYTES = 60 * 1024;

/** Largest verdict envelope body: a verdict JWS sealed for its kiosk (reply.ts) is base64url of it plus a header. */
export const MAX_SEALED_VERDICT_BYTES = Math.ceil((MAX_VERDICT_BYTES * 4) / 3) + 256;

export async function createVerdict(claims: VerdictClaims, signer: Signer): Promise<string> {
  const checked = VerdictClaims.safeParse(claims);
  if (!checked.success) throw new BiokioskError('BadClaims', `verdict claims do not follow the schema: ${describeIssues(checked.error)}`, { kind: 'internal' });
  const jws = await signCompactJws({ kid: signer.kid, typ: VERDICT_TYP }, checked.data, signer);
  if (jws.length > MAX_VERDICT_BYTES) throw new BiokioskError('VerdictTooLarge', `the verdict is ${jws.length} bytes; at most ${MAX_VERDICT_BYTES}`, { kind: 'internal' });
  return jws;
}

export interface ParseVerdictOptions extends FreshnessOptions {
  maxBytes?: number;
  /** The device the verdict must be for (the kiosk's own id). */
  expectedUeid?: string;
}

export interface ParsedVerdict {
  claims: VerdictClaims;
  kid: string;
  /** base64url SHA-256 of the verdict JWS as received. */
  hash: string;
}

/** Size, structure, signature, schema, issuer ownership of the key, revocation, time window, addressee. */
export async function parseVerdict(jws: string | Uint8Array, resolveKey: TrustedKeyResolver, opts: ParseVerdictOptions = {}): Promise<ParsedVerdict> {
  const trust = capturingResolver(resolveKey);
  const { header, payload } = await verifyCompactJws(jws, trust.resolveKey, { maxBytes: opts.maxBytes ?? MAX_VERDICT_BYTES, typ: VERDICT_TYP });
  const parsed = VerdictClaims.safeParse(payload);
  if (!parsed.success) throw new Rejection('malformed', `Verdict claims: ${describeIssues(parsed.error)}.`, { details: { issues: parsed.error.issues.slice(0, 5) } });
  const claims = parsed.data;
  const owner = trust.found();
  if (!owner || owner.owner !== claims.iss) {
    throw new Rejection('unknown_device', `Key ${header.kid} is not registered to verifier ${claims.iss}.`, { details: { kid: header.kid, iss: claims.iss } });
  }
  if (owner.revoked) throw new Rejection('revoked_device', `Verifier ${claims.iss} (key ${header.kid}) is revoked.`, { details: { iss: claims.iss } });
  if (opts.expectedUeid !== undefined && opts.expectedUeid !== claims.ueid) {
    throw new Rejection('malformed', `The verdict is addressed to device ${claims.ueid}, not ${opts.expectedUeid}.`);
  }
  checkFreshness(claims.iat, opts);
  const hash = createHash('sha256').update(typeof jws === 'string' ? Buffer.from(jws, 'utf8') : jws).digest('base64url');
  return { claims, kid: header.kid, hash };
}
