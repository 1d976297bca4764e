/**
 * Schemas for every message body in the protocol (zod), and their TypeScript types. Every object is strict
 * (unknown keys are an error: a field we do not understand must not be silently ignored by a verifier) and every
 * string and array is bounded, so the largest valid message has a known size.
 *
 * Attestation claim names follow EAT (RFC 9711, JSON form) where one fits: `ueid`, `eat_nonce`, `iat`. Times
 * are NumericDate seconds, like JWT/EAT.
 */
import { z } from 'zod';
import { MAX_REASON_MESSAGE, REJECTION_CODES } from './rejections.ts';

// ---- building blocks -------------------------------------------------------------------------------------

/** Device / verifier ids. Also safe as one MQTT topic level (no '/', '+', '#', no leading '$'). */
export const DEVICE_ID_PATTERN = /^[A-Za-z0-9._-]{1,64}$/;
export const DeviceId = z.string().regex(DEVICE_ID_PATTERN, 'must be 1-64 characters of A-Z a-z 0-9 . _ -');

/** Message ids (att_id, req_id): a UUID (36) or ULID (26) fits; base64url characters and '-' only. */
export const MessageId = z.string().regex(/^[A-Za-z0-9_-]{16,64}$/, 'must be 16-64 characters of A-Z a-z 0-9 _ - (a UUID or ULID)');

const base64url = (min: number, max: number) =>
  z.string().min(min).max(max).regex(/^[A-Za-z0-9_-]*$/, 'must be base64url without padding');

/** A base64url SHA-256 (32 bytes → 43 characters). */
export const B64Sha256 = base64url(43, 43);

/**
 * Text without control characters or lone surrogates (names, serials, sites, messages). Lone surrogates are out
 * because JSON.stringify escapes each as six bytes; without them a character costs at most 3 UTF-8 bytes per
 * UTF-16 unit, which is what the message size bounds are computed from.
 */
const text = (max: number) =>
  z
    .string()
    .min(1)
    .max(max)
    .regex(/^(?:[^\u0000-\u001f\u007f\ud800-\udfff]|[\ud800-\udbff][\udc00-\udfff])*$/, 'must not contain control characters or lone surrogates');

/** NumericDate: seconds since the epoch; fractions allowed as in JWT, bounded to sane years. */
export const NumericDate = z.number().min(0).max(1e11);

export const MODALITIES = ['face', 'fingerprint', 'iris'] as const;
export const Modality = z.enum(MODALITIES);
export type Modality = z.infer<typeof Modality>;

/** Longest sealed-content JWE we accept inside an attestation (characters = bytes, it is ASCII). */
export const MAX_SEALED_JWE = 64 * 1024;

/** A compact JWE: five base64url parts (the encrypted key is never empty for ECDH-ES+A256KW). */
export const CompactJwe = z
  .string()
  .max(MAX_SEALED_JWE)
  .regex(/^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/, 'must be a compact JWE (five base64url parts)');

// ---- scenarios, consent, eligibility, overrides (issue 15) -------------------------------------------------

/** A service a decision policy knows (e.g. otc_pickup, prescription, controlled_substance, hospital_admission). */
export const ScenarioId = z.string().regex(/^[a-z][a-z0-9_]{0,47}$/, 'must be 1-48 characters of a-z 0-9 _, starting with a letter');

export const LANGUAGES = ['en', 'zh-Hans'] as const;
export const Language = z.enum(LANGUAGES);
export type Language = z.infer<typeof Language>;

/**
 * Consent to this verification for this purpose (PIPL art. 29, GDPR art. 9 ask for its own explicit consent for
 * biometrics): the purpose (the scenario asked for), when it was given, which text was shown (its version) and in
 * which language. Logged with the decision.
 */
export const Consent = z.strictObject({
  purpose: ScenarioId,
  at: NumericDate,
  text: z.string().regex(/^[a-z0-9][a-z0-9._-]{0,31}\/[0-9]{1,4}$/, "must look like 'name/version', e.g. 'consent-biometric/1'"),
  lang: Language,
});
export type Consent = z.infer<typeof Consent>;

export const OVERRIDE_REASONS = ['id_document_checked', 'biometric_unusable', 'person_declined_biometric', 'device_fault'] as const;
export const Override = z.strictObject({
  /** The attempt that did not verify (null: none was made, e.g. consent refused). */
  of: MessageId.nullable(),
  reason: z.enum(OVERRIDE_REASONS),
  /** The staff member who checked (their badge id). */
  staff: text(64),
});
export type Override = z.infer<typeof Override>;

/**
 * The clear claims of a staff override: an attestation like any other (the device signs it, the verifier logs it),
 * with this template format and model, and the override in the sealed content instead of a template.
 */
export const OVERRIDE_FORMAT = 'biokiosk-override/1';
export const OVERRIDE_MODEL = { name: 'staff-id-check', sha256: '0f'.repeat(32) } as const;

export const ELIGIBILITY_ANSWERS = ['covered', 'not_covered', 'unknown'] as const;
export const ELIGIBILITY_CODES = ['covered', 'coverage_expired', 'coverage_not_yet_valid', 'service_not_covered', 'no_coverage_record', 'source_unavailable'] as const;
export type EligibilityCode = (typeof ELIGIBILITY_CODES)[number];

/** The fixed sentence each eligibility answer comes with (never free text). */
export const ELIGIBILITY_SENTENCES: Readonly<Record<EligibilityCode, string>> = {
  covered: 'The insurance covers this service today.',
  coverage_expired: 'The insurance coverage on record has ended.',
  coverage_not_yet_valid: 'The insurance coverage on record has not started yet.',
  service_not_covered: 'The insurance plan on record does not cover this service.',
  no_coverage_record: 'No insurance coverage is on record for this person.',
  source_unavailable: 'The insurance records could not be consulted.',
};

export const Eligibility = z.strictObject({
  answer: z.enum(ELIGIBILITY_ANSWERS),
  code: z.enum(ELIGIBILITY_CODES),
  message: text(200),
  service: ScenarioId,
  payer: text(64).nullable(),
  plan: text(64).nullable(),
});
export type Eligibility = z.infer<typeof Eligibility>;

/**
 * What a verdict says beyond decision and reasons, copied from its log record (so a redelivered attestation's
 * verdict, rebuilt from the record, says the same): the scenario and the policy version that decided, the
 * eligibility answer, what a step_up asks for, until when a lock holds, a staff override.
 */
export const VerdictDetail = z.strictObject({
  scenario: ScenarioId.nullable(),
  policy_version: text(64).nullable(),
  eligibility: Eligibility.optional(),
  step_up: z
    .strictObject({
      /** Modalities the next check may use (the kiosk takes the first it has). */
      modalities: z.array(Modality).max(3),
      factors: z.strictObject({ have: z.int().nonnegative(), need: z.int().positive() }),
      /** A check of the ID at the counter is always an accepted alternative. */
      counter: z.literal(true),
    })
    .optional(),
  /** NumericDate until which attempts for this identity are refused. */
  locked_until: NumericDate.optional(),
  override: Override.optional(),
});
export type VerdictDetail = z.infer<typeof VerdictDetail>;

// ---- attestation -----------------------------------------------------------------------------------------

/**
 * What an attestation says in the clear: who signed (device, seq, id, time), what kind of template and from
 * which model and sensor, so a verifier can refuse cheaply before it decrypts anything. Everything about the
 * person (subject id, template, quality) and where they were (site) is in `sealed`, readable by verifiers only.
 */
export const AttestationClaims = z.strictObject({
  /** The device id (EAT ueid). */
  ueid: DeviceId,
  /** A verifier challenge, present for online checks (EAT eat_nonce; 8-55 bytes as base64url). */
  eat_nonce: base64url(11, 74).optional(),
  iat: NumericDate,
  /** Per-device counter that only grows: the verifier's replay check. */
  seq: z.int().positive(),
  /** Unique attestation id: the kiosk outbox's key, and what a verdict echoes for correlation. */
  att_id: MessageId,
  modality: Modality,
  /** e.g. 'biokiosk-face/1'. */
  template_format: z.string().regex(/^[a-z0-9][a-z0-9._-]{0,63}\/[0-9]{1,4}$/, "must look like 'name/version', e.g. 'biokiosk-face/1'"),
  model: z.strictObject({
    name: text(128),
    sha256: z.string().regex(/^[0-9a-f]{64}$/, 'must be 64 lowercase hex digits'),
  }),
  sensor: z.strictObject({
    make: text(128),
    model: text(128),
    serial: text(128),
    firmware: text(128),
  }),
  /** `SealedContent`, encrypted to the verifier fleet's key (compact JWE, ECDH-ES+A256KW / A256GCM). */
  sealed: CompactJwe,
  /**
   * The size of the latest audit-log tree head this kiosk has accepted (0 or absent: none yet). The verdict's
   * receipt proves the new tree head consistent with it (RFC 9162 2.1.4), so a log rewritten after the kiosk saw it
   * cannot answer this kiosk again unnoticed.
   */
  log_size: z.int().nonnegative().optional(),
  /** A technician's self-test (`biokiosk selftest`): verified end to end, answered with `self_test`, never matched. */
  test: z.literal(true).optional(),
});
export type AttestationClaims = z.infer<typeof AttestationClaims>;

/** Largest template inside the sealed content (base64url in JSON: 4/3 of this, well inside the JWE bound). */
export const MAX_SEALED_TEMPLATE_BYTES = 30 * 1024;

/** A 256-bit key, base64url (43 characters). */
export const B64Key256 = base64url(43, 43);

/**
 * The sealed part of an attestation (the JWE's plaintext, JSON). `att_id` repeats the outer claim so sealed
 * content cannot be lifted into another attestation; `reply_key` is a fresh AES-256 key the verifier encrypts
 * its verdict with, so only this kiosk can read the answer.
 */
export const SealedContent = z
  .strictObject({
    v: z.literal(1),
    att_id: MessageId,
    /** The claimed subject id. */
    sub: text(128),
    /** Where the kiosk stands. */
    site: text(128),
    quality: z.number().min(0).max(100),
    reply_key: B64Key256,
    /** The template bytes, base64url (absent only in a staff override, which carries no biometric). */
    template: base64url(1, Math.ceil((MAX_SEALED_TEMPLATE_BYTES * 4) / 3)).optional(),
    /** The service asked for (the verifier's decision policy names what each needs). Sealed: it says what the person came for. */
    scenario: ScenarioId.optional(),
    /** The person's consent to this verification for this purpose, as the screen asked for it. */
    consent: Consent.optional(),
    /** Ask for the eligibility answer even where the scenario does not give one (a pharmacy's insurance check). */
    want_eligibility: z.boolean().optional(),
    /** This attempt answers a step_up verdict: the att_id of the attempt that was asked for one more check. */
    step_of: MessageId.optional(),
    /** A staff member checked the ID by hand (no template). */
    override: Override.optional(),
  })
  .refine((c) => (c.override === undefined) !== (c.template === undefined), { message: 'sealed content carries a template, or (a staff override) none', path: ['template'] });
export type SealedContent = z.infer<typeof SealedContent>;

// ---- verdict ---------------------------------------------------------------------------------------------

/** step_up: one more check (another modality, or the ID at the counter); locked: too many failures, retry later. */
export const DECISIONS = ['match', 'no_match', 'rejected', 'step_up', 'locked'] as const;
export const Decision = z.enum(DECISIONS);
export type Decision = z.infer<typeof Decision>;

export const Reason = z.strictObject({
  code: z.enum(REJECTION_CODES),
  message: text(MAX_REASON_MESSAGE),
});
export type Reason = z.infer<typeof Reason>;

/** Deepest inclusion proof accepted: a Merkle tree of 2^64 leaves needs 64 hashes. */
export const MAX_INCLUSION_PROOF = 64;

/** Longest consistency proof accepted (RFC 9162: at most about 2 log2(n) hashes). */
export const MAX_CONSISTENCY_PROOF = 128;

/**
 * One audit-log entry: the verifier's record of a decision, exactly as the log hashed it (canonical JSON, RFC 9162
 * leaf). The receipt carries it so the kiosk can check that the entry is about its attestation and recompute the
 * leaf its inclusion proof starts from.
 */
export const DecisionRecord = z.strictObject({
  v: z.literal(1),
  verifier: DeviceId,
  /** Milliseconds since the epoch. */
  decided_at: z.int().nonnegative(),
  ueid: DeviceId,
  att_id: MessageId,
  att_hash: B64Sha256,
  seq: z.int().positive(),
  sub: text(128).nullable(),
  modality: Modality,
  model_sha256: z.string().regex(/^[0-9a-f]{64}$/),
  site: text(128).nullable(),
  decision: Decision,
  reasons: z.array(z.enum(REJECTION_CODES)).max(16),
  score: z.number().finite().nullable(),
  distance: z.number().finite().nullable(),
  /** The consent given with the attempt (purpose, time, text version, language). */
  consent: Consent.nullable().optional(),
  /** The attempt this one answers a step_up for. */
  step_of: MessageId.nullable().optional(),
  /** What the verdict says beyond decision and reasons (absent in records from before decision policies). */
  detail: VerdictDetail.optional(),
});
export type DecisionRecord = z.infer<typeof DecisionRecord>;

/** Largest checkpoint note a receipt carries, in bytes (the log's signatures and a dozen witnesses' cosignatures). */
export const MAX_RECEIPT_CHECKPOINT = 4096;

/**
 * Audit-log receipt (RFC 9162 proofs, C2SP checkpoint): where the entry sits, the tree it sits in, the inclusion
 * proof, and the checkpoint of that tree signed by the log (cosigned by witnesses when one had witnessed it). The
 * published leaf is SHA-256(salt || canonical entry): the receipt gives its holder both, so they can prove their
 * own entry; nobody else learns anything from the published log.
 */
export const Receipt = z
  .strictObject({
    leafIndex: z.int().nonnegative(),
    treeSize: z.int().positive(),
    /** base64url root of the tree of treeSize entries (the checkpoint's, which is standard base64). */
    rootHash: B64Sha256,
    inclusionProof: z.array(B64Sha256).max(MAX_INCLUSION_PROOF),
    /** The signed note (c2sp.org/tlog-checkpoint) for treeSize. */
    checkpoint: z
      .string()
      .min(1)
      .refine((n) => Buffer.byteLength(n, 'utf8') <= MAX_RECEIPT_CHECKPOINT, { message: `a receipt's checkpoint is at most ${MAX_RECEIPT_CHECKPOINT} bytes` }),
    /** The entry at leafIndex. */
    entry: DecisionRecord,
    /** base64url of the 32 bytes the leaf commits to the entry with. */
    salt: B64Sha256,
    /** Consistency proof from the tree size the attestation named (`log_size`) to treeSize; null when it named none. */
    consistency: z.strictObject({ from: z.int().nonnegative(), proof: z.array(B64Sha256).max(MAX_CONSISTENCY_PROOF) }).nullable(),
  })
  .refine((r) => r.leafIndex < r.treeSize, { message: 'leafIndex must be below treeSize', path: ['leafIndex'] });
export type Receipt = z.infer<typeof Receipt>;

export const VerdictClaims = z
  .strictObject({
    /** The verifier that decided. */
    iss: DeviceId,
    iat: NumericDate,
    /** The attestation answered (from its claims, or from the correlation data when its claims were unreadable). */
    att_id: MessageId,
    /** base64url SHA-256 of the compact attestation JWS, exactly as received. */
    att_hash: B64Sha256,
    ueid: DeviceId,
    /** The attestation's seq, or null when the attestation could not be read. */
    seq: z.int().positive().nullable(),
    decision: Decision,
    /** Codes and their fixed sentences only: never text the sender chose. */
    reasons: z.array(Reason).max(16),
    /** Scenario, policy version, eligibility, step_up, lock, override: the record's `detail`, as logged. */
    detail: VerdictDetail.optional(),
    receipt: Receipt,
  })
  .refine((v) => v.decision !== 'rejected' || v.reasons.length > 0, { message: 'a rejected verdict must give at least one reason', path: ['reasons'] });
export type VerdictClaims = z.infer<typeof VerdictClaims>;

// ---- challenges and status -------------------------------------------------------------------------------

export const ChallengeRequest = z.strictObject({
  req_id: MessageId,
  ueid: DeviceId,
});
export type ChallengeRequest = z.infer<typeof ChallengeRequest>;

export const ChallengeResponse = z.strictObject({
  req_id: MessageId,
  /** Goes into the attestation's eat_nonce. */
  nonce: base64url(11, 74),
  /** NumericDate after which the verifier no longer accepts the nonce. */
  expires_at: NumericDate,
});
export type ChallengeResponse = z.infer<typeof ChallengeResponse>;

export const DeviceState = z.enum(['online', 'offline']);

/** Retained on `biokiosk/v1/{deviceId}/status`; the 'offline' form is also the MQTT last will. */
export const DeviceStatus = z.strictObject({
  state: DeviceState,
  ueid: DeviceId,
  /** NumericDate when this status was composed (for a last will: when the will was registered). */
  at: NumericDate,
  /** Kiosk software version. */
  version: text(64),
});
export type DeviceStatus = z.infer<typeof DeviceStatus>;

// ---- schema errors ---------------------------------------------------------------------------------------

/** One line naming every problem with its path, e.g. `sensor.serial: Too big: ...; seq: Invalid input: ...`. */
export function describeIssues(error: z.ZodError, max = 5): string {
  const parts = error.issues.slice(0, max).map((i) => `${i.path.length ? i.path.map(String).join('.') : '(root)'}: ${i.message}`);
  if (error.issues.length > max) parts.push(`and ${error.issues.length - max} more`);
  return parts.join('; ');
}
