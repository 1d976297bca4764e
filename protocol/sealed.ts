/**
 * The sealed part of an attestation: who the person claims to be, where, the template and its quality, and the
 * key for the verdict, as one JSON object encrypted to the verifier fleet (jwe.ts). The broker and anyone on the
 * path see the device, the time and the kind of template; never the subject, the site or the biometric.
 */
import { randomBytes, type JsonWebKey } from 'node:crypto';
import { describeIssues, MAX_SEALED_JWE, SealedContent, MAX_SEALED_TEMPLATE_BYTES, type Consent, type Override } from './claims.ts';
import { decodeBase64url, encodeBase64url } from './base64url.ts';
import { BiokioskError } from './errors.ts';
import { decryptTemplateSync, MAX_TEMPLATE_BYTES, type DecryptionKey } from './jwe.ts';
import { encryptTemplateJweSync } from './jwe-fast.ts';
import { jwkThumbprint, p256PublicJwk } from './signer.ts';
import { Rejection } from './rejections.ts';

export const REPLY_KEY_BYTES = 32;

/** What the kiosk seals into an attestation. */
export interface ContentToSeal {
  attId: string;
  subject: string;
  site: string;
  quality: number;
  /** Empty for a staff override (it carries no biometric). */
  template: Uint8Array;
  scenario?: string;
  consent?: Consent;
  wantEligibility?: boolean;
  stepOf?: string;
  override?: Override;
}

/** The sealed content, opened and checked. */
export interface OpenedContent {
  subject: string;
  site: string;
  quality: number;
  /** Empty for a staff override. */
  template: Uint8Array;
  /** The AES-256 key the verdict for this attestation is encrypted with (reply.ts). */
  replyKey: Buffer;
  scenario: string | null;
  consent: Consent | null;
  wantEligibility: boolean;
  stepOf: string | null;
  override: Override | null;
}

/** A fresh reply key (the kiosk keeps it with the outbox entry until the verdict comes). */
export function newReplyKey(): Buffer {
  return randomBytes(REPLY_KEY_BYTES);
}

/**
 * Encrypts the content to the fleet's public key; returns the compact JWE for the `sealed` claim. node:crypto,
 * synchronously (jwe-fast.ts): jose's WebCrypto path cost the kiosk milliseconds of thread-pool hops per attempt.
 */
export async function sealContent(c: ContentToSeal, fleetPublicJwk: JsonWebKey, replyKey: Uint8Array): Promise<string> {
  if (c.template.byteLength > MAX_SEALED_TEMPLATE_BYTES) {
    throw new BiokioskError('TemplateTooLarge', `template is ${c.template.byteLength} bytes; at most ${MAX_SEALED_TEMPLATE_BYTES} fit in an attestation`);
  }
  if (replyKey.byteLength !== REPLY_KEY_BYTES) throw new BiokioskError('BadReplyKey', `a reply key is ${REPLY_KEY_BYTES} bytes, not ${replyKey.byteLength}`, { kind: 'internal' });
  const doc: SealedContent = {
    v: 1,
    att_id: c.attId,
    sub: c.subject,
    site: c.site,
    quality: c.quality,
    reply_key: encodeBase64url(replyKey),
    ...(c.override ? { override: c.override } : { template: encodeBase64url(c.template) }),
    ...(c.scenario !== undefined ? { scenario: c.scenario } : {}),
    ...(c.consent ? { consent: c.consent } : {}),
    ...(c.wantEligibility ? { want_eligibility: true } : {}),
    ...(c.stepOf ? { step_of: c.stepOf } : {}),
  };
  const checked = SealedContent.safeParse(doc);
  if (!checked.success) throw new BiokioskError('BadClaims', `sealed content does not follow the schema: ${describeIssues(checked.error)}`);
  const plaintext = Buffer.from(JSON.stringify(checked.data), 'utf8');
  try {
    if (plaintext.byteLength > MAX_TEMPLATE_BYTES) throw new BiokioskError('TemplateTooLarge', `the sealed content is ${plaintext.byteLength} bytes; at most ${MAX_TEMPLATE_BYTES}`);
    const pub = p256PublicJwk(fleetPublicJwk as Record<string, unknown>);
    const kid = typeof fleetPublicJwk.kid === 'string' ? fleetPublicJwk.kid : jwkThumbprint(pub);
    const jwe = encryptTemplateJweSync(plaintext, pub, kid);
    if (jwe.length > MAX_SEALED_JWE) throw new BiokioskError('TemplateTooLarge', `the sealed content is ${jwe.length} characters encrypted; at most ${MAX_SEALED_JWE}`);
    return jwe;
  } finally {
    plaintext.fill(0);
  }
}

/**
 * Decrypts and checks sealed content. A ciphertext that does not decrypt is `template_undecryptable`; content
 * that decrypts but is not ours, or names another attestation, is `malformed`.
 */
export function openSealedContent(jwe: string, key: DecryptionKey, expectedAttId: string): OpenedContent {
  const plaintext = decryptTemplateSync(jwe, key);
  let v: unknown;
  try {
    v = JSON.parse(Buffer.from(plaintext.buffer, plaintext.byteOffset, plaintext.byteLength).toString('utf8'));
  } catch {
    throw new Rejection('malformed', 'The sealed content is not JSON.');
  }
  const parsed = SealedContent.safeParse(v);
  if (!parsed.success) throw new Rejection('malformed', `Sealed content: ${describeIssues(parsed.error)}.`);
  const c = parsed.data;
  if (c.att_id !== expectedAttId) throw new Rejection('malformed', 'The sealed content belongs to another attestation.');
  const template = c.template === undefined ? Buffer.alloc(0) : decodeBase64url(c.template);
  const replyKey = decodeBase64url(c.reply_key);
  if (!template || !replyKey || replyKey.byteLength !== REPLY_KEY_BYTES) throw new Rejection('malformed', 'The sealed template or reply key is not canonical base64url.');
  // Copies in buffers of their own: decoded Buffers may be views into a shared pool, which structured clone
  // (a precheck worker's reply) would copy whole.
  const ownKey = Buffer.alloc(REPLY_KEY_BYTES);
  replyKey.copy(ownKey);
  return {
    subject: c.sub,
    site: c.site,
    quality: c.quality,
    template: new Uint8Array(template),
    replyKey: ownKey,
    scenario: c.scenario ?? null,
    consent: c.consent ?? null,
    wantEligibility: c.want_eligibility ?? false,
    stepOf: c.step_of ?? null,
    override: c.override ?? null,
  };
}
