/**
 * What the verifier keeps: the device registry, replay counters and nonces, the gallery, and the verdicts already
 * given (for idempotent redelivery). An interface, so a PostgreSQL store can stand in for the SQLite one.
 * The audit log has its own store (verifier/audit/).
 */
import type { JWK } from 'jose';

export type DeviceStatus = 'active' | 'revoked';

export interface DeviceRecord {
  ueid: string;
  /** RFC 7638 thumbprint of the device's attestation key: the JWS `kid`. */
  kid: string;
  publicJwk: JWK;
  site: string;
  status: DeviceStatus;
  registeredAt: number;
  revokedAt: number | null;
}

export interface GalleryEntry {
  subject: string;
  modality: string;
  template: Uint8Array;
  templateFormat: string;
  modelSha256: string;
  enrolledAt: number;
}

export type SeqCheck = 'ok' | 'replayed' | 'too_old';

export type NonceCheck = 'ok' | 'unknown' | 'reused' | 'expired';

export interface StoredVerdict {
  attHash: string;
  attId: string;
  verdict: string;
  createdAt: number;
}

/** An unauthenticated rejection kept for the operators (a bounded, expiring sample; never a log entry). */
export interface RejectionSample {
  at: number;
  /** The device id of the topic it arrived on ('' when none). */
  ueid: string;
  code: string;
  /** Sanitised (protocol/rejections.ts sanitizeText), bounded. */
  detail: string;
  bytes: number;
  /** SHA-256 of what arrived (base64url), to recognise repeats. */
  hash: string;
}

export interface RejectionReport {
  /** First hour (ms / 3,600,000) the counts cover. */
  sinceHour: number;
  /** Unauthenticated rejections per code in that period. */
  counts: Record<string, number>;
  /** The newest samples, newest first. */
  samples: RejectionSample[];
}

/** Samples kept at most, and for how long; hourly counts kept for this many days. */
export const REJECTION_SAMPLES_KEPT = 1000;
export const REJECTION_SAMPLE_DAYS = 7;
export const REJECTION_COUNT_DAYS = 30;
/** Expired nonces are pruned this long after they expire. */
export const NONCE_GRACE_MS = 10 * 60_000;

export interface VerifierStore {
  registerDevice(d: Omit<DeviceRecord, 'status' | 'registeredAt' | 'revokedAt'>, now?: number): void;
  revokeDevice(ueid: string, now?: number): boolean;
  deviceByKid(kid: string): DeviceRecord | undefined;
  device(ueid: string): DeviceRecord | undefined;
  devices(): DeviceRecord[];

  /**
   * Anti-replay on the device's `seq`, as a sliding window (in the manner of IPsec's, RFC 4303 3.4.3): a seq is
   * accepted once, if it is above the highest seen, or within `window` below it and not seen before. Strictly
   * "above the last seen" would reject honest attestations that shared subscriptions or retries reorder.
   */
  acceptSeq(ueid: string, seq: number, window: number): SeqCheck;
  lastSeq(ueid: string): number;

  /** Stores a nonce, pruning expired ones and keeping at most `maxPerDevice` (default 16) per device. */
  issueNonce(ueid: string, nonce: string, expiresAt: number, opts?: { now?: number; maxPerDevice?: number }): void;
  nonceCount(): number;
  /** Marks the nonce used; says why not when it cannot be. */
  consumeNonce(ueid: string, nonce: string, now: number): NonceCheck;

  /** Enrols (or replaces) a template; the store encrypts it at rest. */
  enroll(e: Omit<GalleryEntry, 'enrolledAt'>, now?: number): void;
  galleryEntry(subject: string, modality: string): GalleryEntry | undefined;

  /** Counts (per code, this hour) and samples of rejections no registered device signed. */
  noteRejections(counts: ReadonlyMap<string, number>, samples: readonly RejectionSample[], now: number): void;
  rejectionReport(now?: number, opts?: { hours?: number; samples?: number }): RejectionReport;

  verdictFor(attHash: string): StoredVerdict | undefined;
  saveVerdict(v: StoredVerdict): void;

  /** Runs fn in one transaction (one fsync for a batch of decisions). */
  transaction<T>(fn: () => T): T;
  close(): void;
}
