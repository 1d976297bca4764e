/**
 * The verifier's stateless checks on one attestation message: envelope, signature, key ownership and revocation,
 * claims schema, `iat` window, nonce presence (when required), matcher for the format, model allowed, template
 * decrypts and names the same model. No store access, so it runs on the main thread or in a worker
 * (precheck-pool.ts) alike: the caller resolves the signing key beforehand (`peekKid`) and passes it in.
 *
 * The result is plain data (structured-clone safe), a failed check travelling as its rejection code and detail.
 */
import { attestationHash, parseAttestation } from '../protocol/attestation.ts';
import type { AttestationClaims } from '../protocol/claims.ts';
import { correlationOf, decodeEnvelope } from '../protocol/envelope.ts';
import { decryptTemplate, type DecryptionKey } from '../protocol/jwe.ts';
import { Rejection, type RejectionCode } from '../protocol/rejections.ts';
import { deviceIdFromTopic } from '../protocol/topics.ts';
import type { TrustedKey } from '../protocol/trust.ts';
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

export interface PrecheckResult {
  /** The device named by the topic ('' when the topic is not an attestation topic). */
  ueid: string;
  attId: string | null;
  /** attestationHash of the JWS (of the whole payload when no JWS could be taken out of it). */
  hash: string;
  /** The verified claims, without the template JWE (decrypted into `probe`; no need to carry it further). */
  claims: CheckedClaims | null;
  rejection: { code: RejectionCode; detail: string } | null;
  /** The decrypted template, when every check passed. */
  probe: Uint8Array | null;
}

export type CheckedClaims = Omit<AttestationClaims, 'template'>;

export interface PrecheckDeps {
  config: PrecheckConfig;
  fleetKey: DecryptionKey;
  matchers: ReadonlyMap<string, TemplateMatcher>;
}

export async function precheckAttestation(task: PrecheckTask, deps: PrecheckDeps): Promise<PrecheckResult> {
  let ueid = '';
  try {
    ueid = deviceIdFromTopic(task.topic, 'attestations');
  } catch {
    ueid = '';
  }
  const r: PrecheckResult = { ueid, attId: null, hash: '', claims: null, rejection: null, probe: null };
  try {
    const env = decodeEnvelope(task.payload, 'attestation');
    r.attId = correlationOf(env, task.correlationData === undefined ? undefined : Buffer.from(task.correlationData)) ?? null;
    r.hash = attestationHash(env.body);
    const resolveKey = (kid: string) => (kid === task.kid ? task.trusted : undefined);
    const parsed = await parseAttestation(env.body, resolveKey, {
      expectedUeid: ueid || undefined,
      maxAgeSeconds: deps.config.maxAgeSeconds,
      maxFutureSeconds: deps.config.maxFutureSeconds,
      now: (task.receivedAt ?? Date.now()) / 1000,
    });
    const { template: _jwe, ...c } = parsed.claims;
    r.claims = c;
    if (c.att_id !== r.attId) throw new Rejection('malformed', `The envelope's correlation id ${r.attId} is not the attestation's att_id ${c.att_id}.`);
    if (deps.config.requireNonce && !c.eat_nonce) throw new Rejection('nonce_unknown', 'This verifier requires a nonce (online check) and the attestation has none.');
    const matcher = deps.matchers.get(c.template_format);
    if (!matcher) throw new Rejection('unsupported_modality', `No matcher for template format ${c.template_format}.`);
    if (!deps.config.allowedModels.includes(c.model.sha256)) {
      throw new Rejection('untrusted_model', `Model ${c.model.name} (sha256 ${c.model.sha256}) is not on this verifier's allowed list.`);
    }
    const probe = await decryptTemplate(parsed.claims.template, deps.fleetKey);
    let inner: string;
    try {
      inner = matcher.modelOf(probe);
    } catch (e) {
      throw new Rejection('bad_template', `The decrypted template cannot be read: ${(e as Error).message}.`);
    }
    if (inner !== c.model.sha256) throw new Rejection('untrusted_model', `The template was made by model ${inner}, not the ${c.model.sha256} the attestation claims.`);
    r.probe = probe;
  } catch (e) {
    if (!(e instanceof Rejection)) throw e;
    r.rejection = { code: e.code, detail: e.detail };
  }
  // No JWS could be taken out of the payload: name the payload itself.
  if (r.hash === '') r.hash = attestationHash(task.payload);
  return r;
}

/**
 * The `kid` in the protected header of the attestation inside an MQTT payload, read without any check (the
 * precheck does them all): so that the thread holding the store can look the key up before handing the message
 * to a worker. Undefined when there is none to read; the precheck then says what was wrong.
 */
export function peekKid(payload: Uint8Array): string | undefined {
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
