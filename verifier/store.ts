/**
 * What the verifier keeps: the device registry, replay windows and nonces, the gallery, counts of refused messages,
 * and the audit log (which is also what makes redelivery idempotent: an attestation already logged is answered
 * from its log entry, so a node that died between its commit and its answer loses nothing). Asynchronous, so a PostgreSQL store
 * (pg-store.ts) shared by verifier nodes on several hosts stands in for the SQLite one (sqlite-store.ts) of a
 * single box; one conformance suite (test/verifier-store.test.ts) runs against both.
 *
 * Decisions happen in `batch`: one transaction holding the fleet's decision lock (on PostgreSQL an advisory lock,
 * which the database releases when the node holding it dies), so the replay windows, nonce consumption, verdict
 * idempotency and the audit log's one total order stay right whichever node decides, and a batch's decisions and
 * log entries commit together. The batch's operations work on many rows at once: a batch costs a handful of
 * round trips, not a few per message.
 */
import type { JWK } from 'jose';
import type { AuditReader, AuditWriter } from './audit/store.ts';

export type DeviceStatus = 'active' | 'revoked';

/** Where the device's attestation key lives, as shown at registration ('tpm': with the TPM's Certify evidence). */
export type DeviceKeyStore = 'tpm' | 'software' | 'unknown';

/** What registering a device takes. */
export type DeviceRegistration = Omit<DeviceRecord, 'status' | 'registeredAt' | 'revokedAt' | 'keyStore'> & { keyStore?: DeviceKeyStore };

/** One decided attempt, for the behaviour signals (failures per identity, travel between sites, device rejection rate). */
export interface AttemptRow {
  subject: string;
  ueid: string;
  site: string | null;
  at: number;
  /** A failed check (no_match, or an attempt refused while locked): what the lockout counts. */
  failed: boolean;
  outcome: string;
}

/** A step_up waiting for its next check: keyed by the att_id the next attempt names in step_of. */
export interface StepUpRow {
  attId: string;
  subject: string;
  ueid: string;
  scenario: string;
  /** Modalities that matched so far. */
  done: string[];
  need: number;
  expiresAt: number;
}

export interface DeviceRecord {
  ueid: string;
  /** RFC 7638 thumbprint of the device's attestation key: the JWS `kid`. */
  kid: string;
  publicJwk: JWK;
  site: string;
  status: DeviceStatus;
  keyStore: DeviceKeyStore;
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

/** A kiosk cut off at the broker for flooding the stream (verifier/quarantine.ts); kept after release for its strikes. */
export interface QuarantineRow {
  ueid: string;
  /** Quarantines in a row: each doubles the next one's length. */
  strikes: number;
  since: number;
  until: number;
  /** Sanitised, for operators. */
  reason: string;
  releasedAt: number | null;
}

/** The schema version this build reads and writes (verifier/migrations.ts). */
export interface SchemaStatus {
  current: number;
  latest: number;
}

/** An enrolment token, as the registry keeps it: only its hash (the token itself is shown once, to whoever issued it). */
export interface EnrollmentToken {
  /** base64url SHA-256 of the token. */
  hash: string;
  site: string;
  createdAt: number;
  expiresAt: number;
  usedAt: number | null;
  usedBy: string | null;
}

/** An enrolment (or key rotation) between its challenge and its proof. */
export interface PendingEnrollment {
  id: string;
  kind: 'enroll' | 'rotate';
  tokenHash: string | null;
  /** For a rotation: the device rotating. */
  ueid: string | null;
  site: string;
  /** The request, JSON (what the registry checked and will register). */
  request: string;
  /** The credential made for ActivateCredential (null: none, a development device or a rotation). */
  credential: Buffer | null;
  nonce: Buffer;
  createdAt: number;
  expiresAt: number;
}

/** How a registered device proved itself, kept beside its key. */
export interface DeviceIdentity {
  ueid: string;
  evidence: 'tpm' | 'development';
  /** base64url SHA-256 of its EK certificate (TPM devices). */
  ekCertSha256: string | null;
  /** The TPM name of its identity key: what rotations must be certified by. */
  identityKeyName: Buffer | null;
  site: string;
  enrolledAt: number;
  rotatedAt: number | null;
  decommissionedAt: number | null;
}

export type CompleteEnrollment =
  | { ok: true }
  | { ok: false; reason: 'token_used'; usedBy: string | null; usedAt: number | null }
  | { ok: false; reason: 'enrollment_gone' };

/** The operations of one decision batch, inside its transaction (the decision lock held). */
export interface BatchTx {
  /** Marks nonces used, in order (the same nonce twice in one batch: the second is `reused`). */
  consumeNonces(items: ReadonlyArray<{ ueid: string; nonce: string }>, now: number): Promise<NonceCheck[]>;
  /** The replay window (replay-window.ts), in order. */
  acceptSeqs(items: ReadonlyArray<{ ueid: string; seq: number }>): Promise<SeqCheck[]>;
  noteRejections(counts: ReadonlyMap<string, number>, samples: readonly RejectionSample[], now: number): Promise<void>;
  /**
   * Attempts since `since` of any of these subjects or devices, oldest first: read under the decision lock, so
   * every node (PostgreSQL) sees every earlier batch's attempts from every kiosk.
   */
  attempts(q: { subjects: readonly string[]; ueids: readonly string[]; since: number }): Promise<AttemptRow[]>;
  /** Appends attempts; drops those older than `pruneBefore`. */
  recordAttempts(rows: readonly AttemptRow[], pruneBefore: number): Promise<void>;
  stepUps(attIds: readonly string[]): Promise<Map<string, StepUpRow>>;
  /** Stores step-ups (replacing one of the same att_id), drops expired ones and those named in `consumed`. */
  putStepUps(rows: readonly StepUpRow[], consumed: readonly string[], now: number): Promise<void>;
  /** The audit log's storage, inside this transaction. */
  readonly audit: AuditWriter;
}

export interface VerifierStore {
  /** 'sqlite' or 'postgres', for messages and reports. */
  readonly kind: 'sqlite' | 'postgres';
  /** Where the data is, without credentials. */
  readonly description: string;

  registerDevice(d: DeviceRegistration, now?: number): Promise<void>;
  revokeDevice(ueid: string, now?: number): Promise<boolean>;
  device(ueid: string): Promise<DeviceRecord | undefined>;
  devicesByKids(kids: readonly string[]): Promise<Map<string, DeviceRecord>>;
  devices(): Promise<DeviceRecord[]>;

  /**
   * Stores a nonce, pruning expired ones and keeping at most `maxPerDevice` (default 16) per device. Its commit
   * does not wait for the disk: a nonce lost in a power cut only gets its attestation refused as `nonce_unknown`
   * (nothing becomes acceptable that was not), and the batch that consumes it commits durably, covering it too.
   */
  issueNonce(ueid: string, nonce: string, expiresAt: number, opts?: { now?: number; maxPerDevice?: number }): Promise<void>;
  nonceCount(): Promise<number>;

  /** Enrols (or replaces) a template; the store encrypts it at rest. */
  enroll(e: Omit<GalleryEntry, 'enrolledAt'>, now?: number): Promise<void>;
  galleryEntry(subject: string, modality: string): Promise<GalleryEntry | undefined>;
  /**
   * Gallery entries by galleryKey(subject, modality), in one query. A row that does not open (its ciphertext
   * altered, or moved to another row) is there as an UnreadableEntry, so it costs only its own decision.
   */
  galleryEntries(keys: ReadonlyArray<{ subject: string; modality: string }>): Promise<Map<string, GalleryEntry | UnreadableEntry>>;

  /** Attempts of a subject since `since`, oldest first (reports and tests; decisions read them in a batch). */
  attemptsOf(subject: string, since: number): Promise<AttemptRow[]>;

  /** The replay window state of a device (for reports and tests). */
  seqWindow(ueid: string): Promise<{ floor: number; pending: number[] }>;

  /** Counts (per code, this hour) and samples of rejections no registered device signed, outside a batch. */
  noteRejections(counts: ReadonlyMap<string, number>, samples: readonly RejectionSample[], now: number): Promise<void>;
  rejectionReport(now?: number, opts?: { hours?: number; samples?: number }): Promise<RejectionReport>;

  /**
   * One decision batch: a transaction holding the decision lock; retried whole on serialization failures and
   * deadlocks (fn must be safe to run again: it only touches the store through tx).
   */
  batch<T>(fn: (tx: BatchTx) => Promise<T>): Promise<T>;
  /** The audit log, read outside batches (receipts of old entries, the auditor, the tiles server). */
  readonly audit: AuditReader;

  // ---- quarantines (verifier/quarantine.ts) ----------------------------------------------------------------
  quarantineRecord(ueid: string): Promise<QuarantineRow | undefined>;
  /** Stores (or replaces) a device's quarantine row. */
  putQuarantine(row: QuarantineRow): Promise<void>;
  /** Quarantines in force (not released), oldest first; with `dueBy`, only those ending by then. */
  quarantines(opts?: { dueBy?: number }): Promise<QuarantineRow[]>;

  // ---- the registry (provisioning) ------------------------------------------------------------------------
  putEnrollmentToken(t: Omit<EnrollmentToken, 'usedAt' | 'usedBy'>): Promise<void>;
  enrollmentToken(hash: string): Promise<EnrollmentToken | undefined>;
  /** Stores a pending enrolment or rotation (expired ones are pruned). */
  putPendingEnrollment(e: PendingEnrollment, now?: number): Promise<void>;
  pendingEnrollment(id: string): Promise<PendingEnrollment | undefined>;
  /**
   * In one transaction: the token consumed (refused if another enrolment used it meanwhile), the device
   * registered (or its key replaced and the device reactivated), its identity recorded, the pending row gone.
   */
  completeEnrollment(c: { enrollmentId: string; tokenHash: string; device: DeviceRegistration & { keyStore: DeviceRecord['keyStore'] }; identity: DeviceIdentity; now: number }): Promise<CompleteEnrollment>;
  /** In one transaction: the device's key replaced, the identity's rotation time set, the pending row gone. */
  completeRotation(c: { rotationId: string; ueid: string; kid: string; publicJwk: JWK; now: number }): Promise<boolean>;
  deviceIdentity(ueid: string): Promise<DeviceIdentity | undefined>;
  /** Revokes the device and marks its identity decommissioned; false when it was not active. */
  decommissionDevice(ueid: string, now: number): Promise<boolean>;

  schema(): Promise<SchemaStatus>;
  close(): Promise<void>;
}

/** A gallery row that cannot be read, and why. */
export interface UnreadableEntry {
  unreadable: Error;
}

/** The key a gallery entry is found by in a batch. */
export function galleryKey(subject: string, modality: string): string {
  return `${modality}\u0000${subject}`;
}
