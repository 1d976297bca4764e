/**
 * The fleet's registry: turns an enrolment token and a TPM's evidence into a registered device with its own broker
 * login; later, rotates its key and decommissions it. Transport-free (server.ts serves it over HTTPS; the
 * offline path hands it files); every step a typed EnrollmentError with what to do.
 *
 * Enrolment (protocol/enrollment.ts):
 * 1. `begin`: the request is signed by the attestation key it names; the kiosk's clock is within bounds; the
 *    token exists, is unused, unexpired and for this site; a TPM device's EK certificate chains to a configured
 *    manufacturer CA; the identity key is a restricted ECDSA P-256 signing key of the TPM's own making; the
 *    attestation key a fixedTPM, non-restricted signing key whose public key is the request's. The answer: a
 *    credential only that TPM can recover for that identity key (MakeCredential) and a nonce.
 * 2. `complete`: the proof (an HMAC with the recovered credential) and the identity key's TPM2_Certify of the
 *    attestation key over the nonce. Then the kiosk's broker login is created, and in one transaction the token is
 *    consumed, the device registered and its identity kept; the audit log records it; the answer carries the
 *    device id, the login (its password sealed under the credential) and the fleet's public keys.
 * A development device (software key store) proves only possession of its key, and only where the fleet allows.
 */
import { createHash, createPublicKey, randomBytes, timingSafeEqual, createHmac, verify as cryptoVerify, type KeyObject } from 'node:crypto';
import type { JWK } from 'jose';
import {
  activationInput,
  DecommissionAnswer,
  DecommissionRequest,
  EnrollAnswer,
  EnrollChallenge,
  EnrollmentError,
  EnrollProof,
  EnrollRequest,
  ENROLL_VERSION,
  openEnrollment,
  RotateAnswer,
  RotateChallenge,
  RotateProof,
  RotateRequest,
  sealPassword,
  signEnrollment,
  type FleetKeys,
} from '../../protocol/enrollment.ts';
import { jwkThumbprint, p256PublicJwk, type Signer } from '../../protocol/signer.ts';
import { ALG, ECC_CURVE, ST, TPMA_OBJECT } from '../../protocol/tpm/constants.ts';
import { makeCredential } from '../../protocol/tpm/credential.ts';
import { Reader } from '../../protocol/tpm/marshal.ts';
import { eccPublicJwk, objectName, parseAttest, readPublic, type ParsedPublic } from '../../protocol/tpm/structures.ts';
import { appendBatch } from '../audit/log.ts';
import type { LogSigner } from '../log-key.ts';
import type { DeviceRecord, VerifierStore } from '../store.ts';
import { BrokerAdmin, BrokerAdminError } from './broker-admin.ts';
import { verifyEkCertificate, type TrustedCas } from './ek-ca.ts';

export interface RegistryOptions {
  store: VerifierStore;
  /** Signs the registry's answers (the verifier's verdict key). */
  signer: Signer;
  logSigner: LogSigner;
  fleet: FleetKeys;
  /** TPM manufacturer CAs; without them only development devices could enrol. */
  cas: TrustedCas | undefined;
  allowDevelopmentDevices?: boolean;
  broker: { admin: BrokerAdmin; url: string };
  /** How far a kiosk's clock may be from the registry's (default 5 minutes). */
  maxClockSkewMs?: number;
  /** How long a challenge stays good (default 10 minutes). */
  challengeTtlMs?: number;
  now?: () => number;
}

const REQUIRED_IDENTITY = TPMA_OBJECT.fixedTPM | TPMA_OBJECT.fixedParent | TPMA_OBJECT.sensitiveDataOrigin | TPMA_OBJECT.restricted | TPMA_OBJECT.sign;
const REQUIRED_ATTESTATION = TPMA_OBJECT.fixedTPM | TPMA_OBJECT.fixedParent | TPMA_OBJECT.sensitiveDataOrigin | TPMA_OBJECT.sign;

/** The id a device gets: from its key's thumbprint, so enrolling the same key again gives the same id. */
export function deviceIdFor(kid: string): string {
  return `k-${kid.slice(0, 16)}`;
}

/** SHA-256 of a token, base64url: what the store keeps. */
export function tokenHash(token: string): string {
  return createHash('sha256').update(token, 'utf8').digest('base64url');
}

/** A new single-use enrolment token for a site (32 characters); the store keeps its hash only. */
export async function issueEnrollmentToken(store: Pick<VerifierStore, 'putEnrollmentToken'>, site: string, ttlMs: number, now = Date.now()): Promise<{ token: string; expiresAt: number }> {
  if (!site || site.length > 128 || /[\u0000-\u001f]/.test(site)) throw new EnrollmentError('BadSite', 'a site name is 1-128 characters without control characters');
  const token = randomBytes(24).toString('base64url');
  await store.putEnrollmentToken({ hash: tokenHash(token), site, createdAt: now, expiresAt: now + ttlMs });
  return { token, expiresAt: now + ttlMs };
}

interface StoredRequest {
  request: Omit<EnrollRequest, 'token'>;
  ekCertSha256: string | null;
  identityKeyName: string | null;
}

export class Registry {
  private readonly now: () => number;

  constructor(private readonly o: RegistryOptions) {
    this.now = o.now ?? Date.now;
  }

  /** A new single-use token for a site; only its hash is kept. */
  issueToken(site: string, ttlMs: number): Promise<{ token: string; expiresAt: number }> {
    return issueEnrollmentToken(this.o.store, site, ttlMs, this.now());
  }

  /** Step 1: the request checked, the challenge made. */
  async begin(jws: string): Promise<string> {
    const { message: r, kid } = await openEnrollment(jws, EnrollRequest, { selfKey: (p) => (p as { publicJwk?: unknown })?.publicJwk }, 'enrolment request');
    const now = this.now();
    this.checkClock(r.at, now);
    const token = await this.o.store.enrollmentToken(tokenHash(r.token));
    if (!token) throw new EnrollmentError('UnknownToken', 'the enrolment token is not one this fleet issued (check for typing mistakes; issue a new one with `biokiosk verifier issue-token`)', false, 403);
    if (token.usedAt !== null) throw new EnrollmentError('TokenUsed', `the enrolment token was already used (by ${token.usedBy ?? 'another device'} at ${new Date(token.usedAt).toISOString()}): issue a new one`, false, 403);
    if (token.expiresAt < now) throw new EnrollmentError('TokenExpired', `the enrolment token expired at ${new Date(token.expiresAt).toISOString()}: issue a new one`, false, 403);
    if (token.site !== r.site) throw new EnrollmentError('WrongSite', `the enrolment token is for site "${token.site}", not "${r.site}"`, false, 403);
    const nonce = randomBytes(32);
    const id = randomBytes(18).toString('base64url');
    let credential: Buffer | null = null;
    let challenge: Omit<EnrollChallenge, 'credentialBlob' | 'secret'> & { credentialBlob?: string; secret?: string };
    let stored: StoredRequest;
    const { token: _t, ...rest } = r;
    void _t;
    if (r.keyStore === 'software') {
      if (!this.o.allowDevelopmentDevices) throw new EnrollmentError('DevelopmentDeviceRefused', 'this kiosk has a software key store (development only) and this fleet does not accept development devices: provision it with its TPM', false, 403);
      if (r.tpm) throw new EnrollmentError('BadMessage', 'a software key store sends no TPM evidence');
      challenge = { v: ENROLL_VERSION, kind: 'enroll_challenge', enrollmentId: id, nonce: nonce.toString('base64url'), expiresAt: now + this.ttl(), registryTime: now };
      stored = { request: rest, ekCertSha256: null, identityKeyName: null };
    } else {
      if (!r.tpm) throw new EnrollmentError('NoTpmEvidence', 'the request names a TPM key store but carries no TPM evidence');
      if (!this.o.cas) throw new EnrollmentError('NoTpmCa', 'the registry was started without TPM manufacturer CAs (--tpm-ca DIR): it cannot check EK certificates', false, 500);
      const ekDer = Buffer.from(r.tpm.ekCertificate, 'base64url');
      const { ek } = verifyEkCertificate(ekDer, this.o.cas, now);
      const identity = parseArea(r.tpm.identityKeyPublic, 'identity key');
      checkKey(identity, 'identity key', REQUIRED_IDENTITY, 0);
      const attestation = parseArea(r.tpm.attestationKeyPublic, 'attestation key');
      checkKey(attestation, 'attestation key', REQUIRED_ATTESTATION, TPMA_OBJECT.restricted | TPMA_OBJECT.decrypt);
      if (jwkThumbprint(p256PublicJwk(eccPublicJwk(attestation))) !== kid) throw new EnrollmentError('KeyMismatch', "the attestation key's TPM public area is not the key that signed the request", false, 403);
      credential = randomBytes(32);
      let made;
      try {
        made = makeCredential(ek.publicKey, objectName(identity), credential);
      } catch (e) {
        throw new EnrollmentError('UnsupportedEk', (e as Error).message);
      }
      challenge = { v: ENROLL_VERSION, kind: 'enroll_challenge', enrollmentId: id, credentialBlob: made.credentialBlob.toString('base64url'), secret: made.secret.toString('base64url'), nonce: nonce.toString('base64url'), expiresAt: now + this.ttl(), registryTime: now };
      stored = { request: rest, ekCertSha256: createHash('sha256').update(ekDer).digest('base64url'), identityKeyName: Buffer.from(objectName(identity)).toString('base64url') };
    }
    await this.o.store.putPendingEnrollment({ id, kind: 'enroll', tokenHash: token.hash, ueid: null, site: r.site, request: JSON.stringify(stored), credential, nonce, createdAt: now, expiresAt: now + this.ttl() }, now);
    return signEnrollment(challenge, this.o.signer);
  }

  /** Step 2: the proof checked, the device registered, its login issued. */
  async complete(jws: string): Promise<string> {
    const idGuess = peekMember(jws, 'enrollmentId');
    const pending = idGuess ? await this.o.store.pendingEnrollment(idGuess) : undefined;
    if (!pending || pending.kind !== 'enroll') throw new EnrollmentError('UnknownEnrollment', 'no enrolment is waiting for this proof (it expired, or was completed): start `biokiosk provision` again', false, 404);
    const stored = JSON.parse(pending.request) as StoredRequest;
    const { message: p, kid } = await openEnrollment(jws, EnrollProof, { publicJwk: stored.request.publicJwk }, 'enrolment proof');
    const now = this.now();
    if (pending.expiresAt < now) throw new EnrollmentError('ChallengeExpired', `the enrolment challenge expired at ${new Date(pending.expiresAt).toISOString()}: start again`, false, 410);
    if (stored.request.keyStore === 'tpm') {
      if (!p.activation || !p.certify || !pending.credential) throw new EnrollmentError('NoTpmProof', 'the proof of a TPM device carries its activation and its TPM2_Certify');
      const expected = createHmac('sha256', pending.credential).update(activationInput(pending.id, pending.nonce)).digest();
      const got = Buffer.from(p.activation, 'base64url');
      if (got.length !== expected.length || !timingSafeEqual(got, expected)) {
        throw new EnrollmentError('ActivationFailed', 'the credential was not recovered by the TPM whose EK certificate was sent: the identity key is not in that TPM', false, 403);
      }
      const identity = parseArea(stored.request.tpm!.identityKeyPublic, 'identity key');
      const attestation = parseArea(stored.request.tpm!.attestationKeyPublic, 'attestation key');
      checkCertify(p.certify, identity, attestation, pending.nonce);
    }
    const ueid = deviceIdFor(kid);
    const password = BrokerAdmin.newPassword();
    try {
      await this.o.broker.admin.addDevice(ueid, password);
    } catch (e) {
      if (e instanceof BrokerAdminError) throw new EnrollmentError(e.retryable ? 'BrokerUnavailable' : 'BrokerRefused', `${e.message}${e.retryable ? ' (retrying will resume the enrolment)' : ''}`, e.retryable, e.retryable ? 503 : 500);
      throw e;
    }
    // The key store as proven here: a TPM device's key was certified by its TPM (what `tpm_required` scenarios ask).
    const device = { ueid, kid, publicJwk: stored.request.publicJwk as JWK, site: pending.site, keyStore: stored.request.keyStore === 'tpm' ? ('tpm' as const) : ('software' as const) };
    const done = await this.o.store.completeEnrollment({
      enrollmentId: pending.id,
      tokenHash: pending.tokenHash!,
      device,
      identity: { ueid, evidence: stored.request.keyStore === 'tpm' ? 'tpm' : 'development', ekCertSha256: stored.ekCertSha256, identityKeyName: stored.identityKeyName ? Buffer.from(stored.identityKeyName, 'base64url') : null, site: pending.site, enrolledAt: now, rotatedAt: null, decommissionedAt: null },
      now,
    });
    if (!done.ok) {
      await this.o.broker.admin.removeDevice(ueid).catch(() => {});
      if (done.reason === 'token_used') throw new EnrollmentError('TokenUsed', `the enrolment token was used meanwhile (by ${done.usedBy ?? 'another device'}): issue a new one`, false, 403);
      throw new EnrollmentError('UnknownEnrollment', 'the enrolment was completed or expired meanwhile: start again', false, 404);
    }
    await this.logDeviceEvent({ event: 'registered', ueid, site: pending.site, kid, evidence: stored.request.keyStore === 'tpm' ? 'tpm' : 'development', ek_cert_sha256: stored.ekCertSha256 }, now);
    const sealed = stored.request.keyStore === 'tpm';
    const answer: EnrollAnswer = {
      v: ENROLL_VERSION,
      kind: 'enroll_answer',
      ueid,
      site: pending.site,
      kid,
      evidence: sealed ? 'tpm' : 'development',
      broker: { url: this.o.broker.url, username: ueid, password: sealed ? sealPassword(password, pending.credential!, pending.id) : password, sealed },
      fleet: this.o.fleet,
      registryTime: now,
    };
    return signEnrollment(answer, this.o.signer);
  }

  /** Rotation, step 1: a registered TPM device asks, signing with its current key. */
  async rotateBegin(jws: string): Promise<string> {
    const ueid = peekMember(jws, 'ueid');
    const device = ueid ? await this.o.store.device(ueid) : undefined;
    if (!device || device.status !== 'active') throw new EnrollmentError('UnknownDevice', `${ueid ?? 'the device'} is not an active registered device`, false, 403);
    const { message: r } = await openEnrollment(jws, RotateRequest, { publicJwk: device.publicJwk as Record<string, unknown> }, 'rotation request');
    const now = this.now();
    this.checkClock(r.at, now);
    const identity = await this.o.store.deviceIdentity(r.ueid);
    if (identity?.evidence !== 'tpm' || !identity.identityKeyName) throw new EnrollmentError('NotATpmDevice', `${r.ueid} was not enrolled with TPM evidence: re-provision it instead of rotating`, false, 403);
    const nonce = randomBytes(32);
    const id = randomBytes(18).toString('base64url');
    await this.o.store.putPendingEnrollment({ id, kind: 'rotate', tokenHash: null, ueid: r.ueid, site: device.site, request: JSON.stringify({ oldKid: device.kid }), credential: null, nonce, createdAt: now, expiresAt: now + this.ttl() }, now);
    return signEnrollment({ v: ENROLL_VERSION, kind: 'rotate_challenge', rotationId: id, nonce: nonce.toString('base64url'), expiresAt: now + this.ttl() } satisfies RotateChallenge, this.o.signer);
  }

  /** Rotation, step 2: the new key, certified by the same identity key, endorsed by the old key. */
  async rotateComplete(jws: string): Promise<string> {
    const id = peekMember(jws, 'rotationId');
    const pending = id ? await this.o.store.pendingEnrollment(id) : undefined;
    if (!pending || pending.kind !== 'rotate' || !pending.ueid) throw new EnrollmentError('UnknownRotation', 'no key rotation is waiting for this proof: start `biokiosk rotate-key` again', false, 404);
    const device = await this.o.store.device(pending.ueid);
    const identity = await this.o.store.deviceIdentity(pending.ueid);
    if (!device || device.status !== 'active' || !identity?.identityKeyName) throw new EnrollmentError('UnknownDevice', `${pending.ueid} is no longer active`, false, 403);
    // Endorsed by the old key: the proof is signed with the key on record.
    const { message: p } = await openEnrollment(jws, RotateProof, { publicJwk: device.publicJwk as Record<string, unknown> }, 'rotation proof');
    const now = this.now();
    if (pending.expiresAt < now) throw new EnrollmentError('ChallengeExpired', 'the rotation challenge expired: start again', false, 410);
    const identityArea = parseArea(p.identityKeyPublic, 'identity key');
    if (!Buffer.from(objectName(identityArea)).equals(identity.identityKeyName)) throw new EnrollmentError('IdentityMismatch', 'the new key is certified by another identity key than the one this device enrolled with: not the same TPM', false, 403);
    const attestation = parseArea(p.attestationKeyPublic, 'new attestation key');
    checkKey(attestation, 'new attestation key', REQUIRED_ATTESTATION, TPMA_OBJECT.restricted | TPMA_OBJECT.decrypt);
    const newJwk = p256PublicJwk(eccPublicJwk(attestation));
    const newKid = jwkThumbprint(newJwk);
    if (jwkThumbprint(p256PublicJwk(p.newPublicJwk)) !== newKid) throw new EnrollmentError('KeyMismatch', "the new key's public area is not the key the proof names", false, 403);
    checkCertify(p.certify, identityArea, attestation, pending.nonce);
    // The new key signs too: whoever asks holds it.
    await openEnrollment(p.newKeySignature, RotateRequest, { publicJwk: newJwk as unknown as Record<string, unknown> }, "new key's signature");
    if (!(await this.o.store.completeRotation({ rotationId: pending.id, ueid: pending.ueid, kid: newKid, publicJwk: newJwk as unknown as JWK, now }))) {
      throw new EnrollmentError('UnknownRotation', 'the rotation was completed or the device revoked meanwhile', false, 409);
    }
    await this.logDeviceEvent({ event: 'key_rotated', ueid: pending.ueid, site: device.site, kid: newKid, previous_kid: device.kid }, now);
    return signEnrollment({ v: ENROLL_VERSION, kind: 'rotate_answer', ueid: pending.ueid, kid: newKid, at: now } satisfies RotateAnswer, this.o.signer);
  }

  /** Decommissioning: signed by the device's key; it is revoked, its broker login removed, the log told. */
  async decommission(jws: string): Promise<string> {
    const ueid = peekMember(jws, 'ueid');
    const device = ueid ? await this.o.store.device(ueid) : undefined;
    if (!device) throw new EnrollmentError('UnknownDevice', `${ueid ?? 'the device'} is not registered`, false, 404);
    const { message: r } = await openEnrollment(jws, DecommissionRequest, { publicJwk: device.publicJwk as Record<string, unknown> }, 'decommission request');
    const now = this.now();
    this.checkClock(r.at, now);
    const revoked = await this.o.store.decommissionDevice(r.ueid, now);
    try {
      await this.o.broker.admin.removeDevice(r.ueid);
    } catch (e) {
      if (e instanceof BrokerAdminError) throw new EnrollmentError('BrokerUnavailable', `${r.ueid} is revoked, but its broker login could not be removed yet: ${e.message} (retrying finishes it)`, true, 503);
      throw e;
    }
    if (revoked) await this.logDeviceEvent({ event: 'decommissioned', ueid: r.ueid, site: device.site, kid: device.kid, reason: r.reason }, now);
    return signEnrollment({ v: ENROLL_VERSION, kind: 'decommission_answer', ueid: r.ueid, revokedAt: revoked ? now : (device.revokedAt ?? now) } satisfies DecommissionAnswer, this.o.signer);
  }

  private checkClock(at: number, now: number): void {
    const skew = at - now;
    const max = this.o.maxClockSkewMs ?? 5 * 60_000;
    if (Math.abs(skew) > max) {
      throw new EnrollmentError('ClockSkew', `the kiosk's clock is ${formatSkew(skew)} ${skew > 0 ? 'ahead of' : 'behind'} the registry's (at most ${formatSkew(max)} allowed): set the clock (NTP) and retry`, false, 400);
    }
  }

  private ttl(): number {
    return this.o.challengeTtlMs ?? 10 * 60_000;
  }

  private async logDeviceEvent(record: Record<string, unknown>, now: number): Promise<void> {
    const full = { v: 1, type: 'device', ...record, at: now };
    const key = `device:${String(record['ueid'])}:${String(record['event'])}:${String(record['kid'])}`;
    await this.o.store.batch((tx) => appendBatch(tx.audit, this.o.logSigner, [{ key, record: full }], now));
  }
}

function formatSkew(ms: number): string {
  const a = Math.abs(ms);
  if (a >= 86_400_000) return `${(a / 86_400_000).toFixed(1)} days`;
  if (a >= 3_600_000) return `${(a / 3_600_000).toFixed(1)} hours`;
  return `${Math.round(a / 60_000)} minutes`;
}

/** A member of a JWS payload, read before its signature is checked (to find which key checks it). */
function peekMember(jws: string, member: string): string | undefined {
  try {
    const v = (JSON.parse(Buffer.from(jws.split('.')[1] ?? '', 'base64url').toString('utf8')) as Record<string, unknown>)[member];
    return typeof v === 'string' && v.length <= 128 ? v : undefined;
  } catch {
    return undefined;
  }
}

function parseArea(b64: string, what: string): ParsedPublic {
  const raw = Buffer.from(b64, 'base64url');
  try {
    const r = new Reader(raw, what);
    const p = readPublic(r);
    r.end();
    return { ...p, raw };
  } catch (e) {
    throw new EnrollmentError('BadTpmEvidence', `the ${what}'s TPM public area does not parse: ${(e as Error).message}`);
  }
}

function checkKey(p: ParsedPublic, what: string, required: number, forbidden: number): void {
  if (p.type !== ALG.ECC || p.curve !== ECC_CURVE.NIST_P256 || p.nameAlg !== ALG.SHA256) throw new EnrollmentError('BadTpmEvidence', `the ${what} is not an ECC P-256 key with SHA-256 names`);
  if ((p.attributes & required) !== required) throw new EnrollmentError('BadTpmEvidence', `the ${what} lacks attributes 0x${(required & ~p.attributes).toString(16)} (it must be made inside the TPM and never leave it)`);
  if (p.attributes & forbidden) throw new EnrollmentError('BadTpmEvidence', `the ${what} has attributes it must not have (0x${(p.attributes & forbidden).toString(16)})`);
  if (p.scheme.scheme !== ALG.ECDSA || p.scheme.hashAlg !== ALG.SHA256) throw new EnrollmentError('BadTpmEvidence', `the ${what}'s scheme is not ECDSA with SHA-256`);
}

/** The identity key's TPM2_Certify: signed by it, made by the TPM, over the nonce, naming the attestation key. */
function checkCertify(c: { attest: string; signature: string }, identity: ParsedPublic, attestation: ParsedPublic, nonce: Buffer): void {
  const attest = Buffer.from(c.attest, 'base64url');
  const sig = Buffer.from(c.signature, 'base64url');
  const key: KeyObject = createPublicKey({ key: p256PublicJwk(eccPublicJwk(identity)) as never, format: 'jwk' });
  if (sig.length !== 64 || !cryptoVerify('sha256', attest, { key, dsaEncoding: 'ieee-p1363' }, sig)) throw new EnrollmentError('BadCertify', "the TPM2_Certify signature does not verify with the identity key", false, 403);
  let parsed;
  try {
    parsed = parseAttest(attest);
  } catch (e) {
    throw new EnrollmentError('BadCertify', `the TPM2_Certify attestation does not parse: ${(e as Error).message}`, false, 403);
  }
  if (parsed.type !== ST.ATTEST_CERTIFY || !parsed.certify) throw new EnrollmentError('BadCertify', 'the attestation is not a TPM2_Certify', false, 403);
  if (!Buffer.from(parsed.extraData).equals(nonce)) throw new EnrollmentError('BadCertify', "the TPM2_Certify is not over this registry's nonce (a replayed certification)", false, 403);
  if (!Buffer.from(parsed.certify.name).equals(Buffer.from(objectName(attestation)))) throw new EnrollmentError('BadCertify', 'the TPM2_Certify names another key than the attestation key', false, 403);
}
