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

  issueNonce(ueid: string, nonce: string, expiresAt: number): void;
  /** Marks the nonce used; says why not when it cannot be. */
  consumeNonce(ueid: string, nonce: string, now: number): NonceCheck;

  enroll(e: Omit<GalleryEntry, 'enrolledAt'>, now?: number): void;
  galleryEntry(subject: string, modality: string): GalleryEntry | undefined;

  verdictFor(attHash: string): StoredVerdict | undefined;
  saveVerdict(v: StoredVerdict): void;

  /** Runs fn in one transaction (one fsync for a batch of decisions). */
  transaction<T>(fn: () => T): T;
  close(): void;
}
