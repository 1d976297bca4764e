/**
 * The verifier's stateless checks on one attestation message, in two stages:
 * 1. authentication: envelope, topic, signature, key ownership and revocation, claims schema, the envelope's
 *    correlation id equal to the signed att_id (protocol/attestation.ts `authenticateAttestation`). A message
 *    that fails here was not sent, as it arrived, by a device we trust: nothing is ever bound to its claims;
 * 2. for authenticated messages: the sealed content (subject, site, template, the verdict's reply key) opened,
 *    then `iat` window, nonce presence (when required), matcher for the format, model allowed, template names
 *    the same model.
 * No store access, so it runs on the main thread or in a worker (precheck-pool.ts) alike: the caller resolves
 * the signing key beforehand (`peekKid`) and passes it in.
 *
 * The result is plain data (structured-clone safe), a failed check travelling as its rejection code and detail.
 */
import { attestationHash, authenticateAttestation } from '../protocol/attestation.ts';
import { OVERRIDE_FORMAT, OVERRIDE_MODEL, type AttestationClaims, type Consent, type Override } from '../protocol/claims.ts';
import { correlationOf, decodeEnvelope, MAX_ENVELOPE_BYTES } from '../protocol/envelope.ts';
import type { DecryptionKey } from '../protocol/jwe.ts';
import { Rejection, type RejectionCode } from '../protocol/rejections.ts';
import { openSealedContent } from '../protocol/sealed.ts';
import { deviceIdFromTopic } from '../protocol/topics.ts';
import { checkFreshness, type TrustedKey } from '../protocol/trust.ts';
import type { TemplateMatcher } from './matchers.ts';

/** What the stateless checks need to know about the verifier's configuration. */
export interface PrecheckConfig {
  maxAgeSeconds?: number;
  maxFutureSeconds?: number;
  /** Models whose templates are accepted (sha256, hex). Empty: none. */
  allowedModels: readonly string[];
  requireNonce?: boolean;
}

/** One message to check, with the key its JWS header names as the store knows it (undefined: not registered). */
export interface PrecheckTask {
  topic: string;
  payload: Uint8Array;
  correlationData?: Uint8Array;
  receivedAt?: number;
  kid: string | undefined;
  trusted: TrustedKey | undefined;
}

/** The person-related part of an attestation, from its sealed content. */
export interface SealedFacts {
  subject: string;
  site: string;
  quality: number;
  scenario: string | null;
  consent: Consent | null;
  wantEligibility: boolean;
  stepOf: string | null;
  /** A staff override: no template, nothing to match. */
  override: Override | null;
}

export interface PrecheckResult {
  /** The device named by the topic ('' when the topic is not an attestation topic). */
  ueid: string;
  /** The att_id: the signed one when authenticated, else the envelope's unverified corr (for records only). */
  attId: string | null;
  /** attestationHash of the JWS (of the whole payload when no JWS could be taken out of it). */
  hash: string;
  /** Payload size in bytes. */
  bytes: number;
  /** A registered, unrevoked device signed this message as it arrived (stage 1 passed). */
  authenticated: boolean;
  /** The verified claims (authenticated only), without the sealed JWE. */
  claims: CheckedClaims | null;
  /** The sealed content's facts, when it opened. */
  facts: SealedFacts | null;
  /** The key to seal this attestation's verdict with, when the sealed content opened. */
  replyKey: Uint8Array | null;
  rejection: { code: RejectionCode; detail: string } | null;
  /** The decrypted template, when every check passed. */
  probe: Uint8Array | null;
}

export type CheckedClaims = Omit<AttestationClaims, 'sealed'>;

export interface PrecheckDeps {
  config: PrecheckConfig;
  fleetKey: DecryptionKey;
  matchers: ReadonlyMap<string, TemplateMatcher>;
}

export async function precheckAttestation(task: PrecheckTask, deps: PrecheckDeps): Promise<PrecheckResult> {
  const r: PrecheckResult = { ueid: '', attId: null, hash: '', bytes: task.payload.byteLength, authenticated: false, claims: null, facts: null, replyKey: null, rejection: null, probe: null };
  try {
    r.ueid = deviceIdFromTopic(task.topic, 'attestations');
  } catch {
    r.ueid = '';
  }
  try {
    // The intake bounds sizes already; checked again so the precheck's contract does not depend on its caller.
    if (task.payload.byteLength > MAX_ENVELOPE_BYTES) throw new Rejection('oversized', `The MQTT payload is ${task.payload.byteLength} bytes; at most ${MAX_ENVELOPE_BYTES} allowed.`);
    if (!r.ueid) throw new Rejection('malformed', 'The message did not arrive on a device attestation topic.');
    const env = decodeEnvelope(task.payload, 'attestation');
    const corr = correlationOf(env, task.correlationData === undefined ? undefined : Buffer.from(task.correlationData));
    r.attId = corr ?? null;
    r.hash = attestationHash(env.body);
    const resolveKey = (kid: string) => (kid === task.kid ? task.trusted : undefined);
    const parsed = await authenticateAttestation(env.body, resolveKey, { expectedUeid: r.ueid, expectedAttId: env.corr });
    r.authenticated = true;
    const { sealed, ...c } = parsed.claims;
    r.claims = c;
    const opened = openSealedContent(sealed, deps.fleetKey, c.att_id);
    r.replyKey = opened.replyKey;
    r.facts = { subject: opened.subject, site: opened.site, quality: opened.quality, scenario: opened.scenario, consent: opened.consent, wantEligibility: opened.wantEligibility, stepOf: opened.stepOf, override: opened.override };
    checkFreshness(c.iat, { maxAgeSeconds: deps.config.maxAgeSeconds, maxFutureSeconds: deps.config.maxFutureSeconds, now: (task.receivedAt ?? Date.now()) / 1000 });
    if (deps.config.requireNonce && !c.eat_nonce) throw new Rejection('nonce_unknown', 'This verifier requires a nonce (online check) and the attestation has none.');
    // A staff override is signed and logged like any attempt, but carries no template: there is nothing to match.
    if (c.template_format === OVERRIDE_FORMAT || opened.override) {
      if (c.template_format !== OVERRIDE_FORMAT || !opened.override || c.model.sha256 !== OVERRIDE_MODEL.sha256) throw new Rejection('malformed', `A staff override has the template format ${OVERRIDE_FORMAT}, the override model and an override in its sealed content.`);
      return r;
    }
    const matcher = deps.matchers.get(c.template_format);
    if (!matcher) throw new Rejection('unsupported_modality', `No matcher for template format ${c.template_format}.`);
    if (!deps.config.allowedModels.includes(c.model.sha256)) {
      throw new Rejection('untrusted_model', `Model ${c.model.name} (sha256 ${c.model.sha256}) is not on this verifier's allowed list.`);
    }
    let inner: string;
    try {
      inner = matcher.modelOf(opened.template);
    } catch (e) {
      throw new Rejection('bad_template', `The decrypted template cannot be read: ${(e as Error).message}.`);
    }
    if (inner !== c.model.sha256) throw new Rejection('untrusted_model', `The template was made by model ${inner}, not the ${c.model.sha256} the attestation claims.`);
    r.probe = opened.template;
  } catch (e) {
    if (!(e instanceof Rejection)) throw e;
    r.rejection = { code: e.code, detail: e.detail };
  }
  // No JWS could be taken out of the payload: name the payload itself.
  if (r.hash === '') r.hash = attestationHash(task.payload);
  return r;
}

/**
 * The verifier's intake test, on the main thread before anything is queued, without any cryptography: is this
 * message even shaped like an attestation of the topic's device? Envelope, the correlation id equal to the att_id
 * and ueid inside the (not yet verified) claims, and the header's kid. What fails here is certain to fail the full
 * checks too, so it is refused at once: a rebound copy of a genuine attestation, or junk on a device's topic,
 * never costs that device's queue or failure budget anything. Returns the kid for the caller to compare with the
 * device's registered key.
 */
export function prescreen(topicUeid: string, payload: Uint8Array): { kid: string } | { rejection: { code: RejectionCode; detail: string } } {
  // Plain checks and plain results, no zod and no exceptions: under a flood this runs for every message, and an
  // Error's stack trace costs more than the checks themselves.
  const refuse = (detail: string) => ({ rejection: { code: 'malformed' as const, detail } });
  if (payload.byteLength > MAX_ENVELOPE_BYTES) return { rejection: { code: 'oversized', detail: `The MQTT payload is ${payload.byteLength} bytes; at most ${MAX_ENVELOPE_BYTES} allowed.` } };
  const env = parseJson(Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength).toString('utf8')) as Record<string, unknown> | undefined;
  if (!env || typeof env !== 'object' || env['v'] !== 1 || env['kind'] !== 'attestation' || typeof env['corr'] !== 'string' || typeof env['body'] !== 'string') return refuse('The payload is not an attestation envelope.');
  const body = env['body'];
  const d1 = body.indexOf('.');
  const d2 = d1 < 0 ? -1 : body.indexOf('.', d1 + 1);
  if (d1 <= 0 || d1 > 512 || d2 < 0 || body.indexOf('.', d2 + 1) >= 0) return refuse('A compact JWS has exactly three dot-separated parts.');
  const header = parseJson(Buffer.from(body.slice(0, d1), 'base64url').toString('utf8')) as { kid?: unknown } | undefined;
  const claims = parseJson(Buffer.from(body.slice(d1 + 1, d2), 'base64url').toString('utf8')) as { att_id?: unknown; ueid?: unknown } | undefined;
  if (typeof header?.kid !== 'string') return refuse('The JWS header has no kid.');
  if (typeof claims !== 'object' || claims === null || claims.att_id !== env['corr']) return refuse("The envelope's correlation id is not the attestation's att_id.");
  if (claims.ueid !== topicUeid) return refuse(`The attestation does not name the device of the topic it arrived on (${topicUeid}).`);
  return { kid: header.kid };
}

/**
 * A JSON object, or undefined. What cannot be one is refused before JSON.parse (a thrown SyntaxError costs some
 * ten times a successful parse, and junk is what a flood is made of); what still throws does so without a stack.
 */
function parseJson(text: string): unknown {
  if (!bracedObject(text)) return undefined;
  const limit = Error.stackTraceLimit;
  Error.stackTraceLimit = 0;
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  } finally {
    Error.stackTraceLimit = limit;
  }
}

/** Whether the text, white space aside, begins with { and ends with } (JSON's own white space: RFC 8259 section 2). */
function bracedObject(text: string): boolean {
  const ws = (c: number) => c === 0x20 || c === 0x09 || c === 0x0a || c === 0x0d;
  let i = 0;
  let j = text.length - 1;
  while (i <= j && ws(text.charCodeAt(i))) i++;
  while (j >= i && ws(text.charCodeAt(j))) j--;
  return i < j && text.charCodeAt(i) === 0x7b && text.charCodeAt(j) === 0x7d;
}

/**
 * The `kid` in the protected header of the attestation inside an MQTT payload, read without any check (the
 * precheck does them all): so that the thread holding the store can look the key up before handing the message
 * to a worker. Undefined when there is none to read; the precheck then says what was wrong.
 */
export function peekKid(payload: Uint8Array): string | undefined {
  if (payload.byteLength > MAX_ENVELOPE_BYTES) return undefined;
  try {
    const env = JSON.parse(Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength).toString('utf8')) as { body?: unknown };
    if (typeof env.body !== 'string') return undefined;
    const dot = env.body.indexOf('.');
    if (dot <= 0 || dot > 4096) return undefined;
    const header = JSON.parse(Buffer.from(env.body.slice(0, dot), 'base64url').toString('utf8')) as { kid?: unknown };
    return typeof header.kid === 'string' ? header.kid : undefined;
  } catch {
    return undefined;
  }
}

/** The rejection a precheck result carries, as the typed error again. */
export function rejectionOf(r: PrecheckResult): Rejection | null {
  return r.rejection ? new Rejection(r.rejection.code, r.rejection.detail) : null;
}
