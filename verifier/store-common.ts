/** Pieces both stores share: schema errors and how a replay window's seen set is stored. */
import { BiokioskError } from '../protocol/errors.ts';
import type { JWK } from 'jose';
import type { AttemptRow, DeviceIdentity, DeviceRecord, EnrollmentToken, PendingEnrollment, QuarantineRow, StepUpRow } from './store.ts';

/** The database is not at the schema version this build reads and writes (or cannot be brought there). */
export class SchemaError extends BiokioskError {
  constructor(message: string) {
    super('SchemaMismatch', message, { kind: 'input' });
  }
}

/** The seqs accepted above a window's floor, as stored: a JSON array, ascending. */
export function encodeSeen(seen: ReadonlySet<number>): string {
  return JSON.stringify([...seen].sort((a, b) => a - b));
}

export function decodeSeen(text: string): Set<number> {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    v = undefined;
  }
  if (!Array.isArray(v) || !v.every((x) => Number.isSafeInteger(x))) {
    throw new BiokioskError('StoreCorrupt', 'a stored replay window is not a list of integers', { kind: 'internal' });
  }
  return new Set(v as number[]);
}

/** Rows of the behaviour tables as both databases return them. */
export interface AttemptDbRow {
  subject: string;
  ueid: string;
  site: string | null;
  at: number;
  failed: number | boolean;
  outcome: string;
}

export interface StepUpDbRow {
  att_id: string;
  subject: string;
  ueid: string;
  scenario: string;
  done: string;
  need: number;
  expires_at: number;
}

export function toAttempt(r: AttemptDbRow): AttemptRow {
  return { subject: r.subject, ueid: r.ueid, site: r.site, at: Number(r.at), failed: r.failed === true || r.failed === 1, outcome: r.outcome };
}

export function toStepUp(r: StepUpDbRow): StepUpRow {
  return { attId: r.att_id, subject: r.subject, ueid: r.ueid, scenario: r.scenario, done: JSON.parse(r.done) as string[], need: Number(r.need), expiresAt: Number(r.expires_at) };
}

// Rows of both stores' registry tables, as the store interface gives them (BIGINT columns arrive as strings from pg).
export function toToken(row: unknown): EnrollmentToken | undefined {
  if (!row) return undefined;
  const r = row as { hash: string; site: string; created_at: number; expires_at: number; used_at: number | null; used_by: string | null };
  return { hash: r.hash, site: r.site, createdAt: Number(r.created_at), expiresAt: Number(r.expires_at), usedAt: r.used_at === null ? null : Number(r.used_at), usedBy: r.used_by };
}

export function toPending(row: unknown): PendingEnrollment | undefined {
  if (!row) return undefined;
  const r = row as { id: string; kind: 'enroll' | 'rotate'; token_hash: string | null; ueid: string | null; site: string; request: string; credential: Buffer | null; nonce: Buffer; created_at: number; expires_at: number };
  return { id: r.id, kind: r.kind, tokenHash: r.token_hash, ueid: r.ueid, site: r.site, request: r.request, credential: r.credential === null ? null : Buffer.from(r.credential), nonce: Buffer.from(r.nonce), createdAt: Number(r.created_at), expiresAt: Number(r.expires_at) };
}

export function toIdentity(row: unknown): DeviceIdentity | undefined {
  if (!row) return undefined;
  const r = row as { ueid: string; evidence: 'tpm' | 'development'; ek_cert_sha256: string | null; identity_key_name: Buffer | null; site: string; enrolled_at: number; rotated_at: number | null; decommissioned_at: number | null };
  const n = (v: number | null) => (v === null ? null : Number(v));
  return { ueid: r.ueid, evidence: r.evidence, ekCertSha256: r.ek_cert_sha256, identityKeyName: r.identity_key_name === null ? null : Buffer.from(r.identity_key_name), site: r.site, enrolledAt: Number(r.enrolled_at), rotatedAt: n(r.rotated_at), decommissionedAt: n(r.decommissioned_at) };
}

export function toDevice(row: unknown): DeviceRecord | undefined {
  if (!row) return undefined;
  const r = row as { ueid: string; kid: string; jwk: string; site: string; status: 'active' | 'revoked'; key_store: DeviceRecord['keyStore']; registered_at: number; revoked_at: number | null };
  return { ueid: r.ueid, kid: r.kid, publicJwk: JSON.parse(r.jwk) as JWK, site: r.site, status: r.status, keyStore: r.key_store, registeredAt: Number(r.registered_at), revokedAt: r.revoked_at === null ? null : Number(r.revoked_at) };
}

export function toQuarantine(row: unknown): QuarantineRow | undefined {
  if (!row) return undefined;
  const r = row as { ueid: string; strikes: number; since: number | string; until: number | string; reason: string; released_at: number | string | null };
  return { ueid: r.ueid, strikes: Number(r.strikes), since: Number(r.since), until: Number(r.until), reason: r.reason, releasedAt: r.released_at === null ? null : Number(r.released_at) };
}
