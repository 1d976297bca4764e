import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { attestationHash, authenticateAttestation, createAttestation, MAX_ATTESTATION_BYTES, newAttestationId, parseAttestation } from '../protocol/attestation.ts';
import { encodeBase64url } from '../protocol/base64url.ts';
import { AttestationClaims, ChallengeResponse, DeviceStatus, MAX_CONSISTENCY_PROOF, MAX_SEALED_JWE, SealedContent, VerdictClaims, type DecisionRecord, type Receipt } from '../protocol/claims.ts';
import { encryptTemplate, generateFleetKeyPair } from '../protocol/jwe.ts';
import { newReplyKey, openSealedContent, sealContent } from '../protocol/sealed.ts';
import { ATTESTATION_TYP, signCompactJws } from '../protocol/jws.ts';
import { Rejection, type RejectionCode } from '../protocol/rejections.ts';
import type { TrustedKeyResolver } from '../protocol/trust.ts';
import { createVerdict, MAX_VERDICT_BYTES, parseVerdict } from '../protocol/verdict.ts';
import { SoftwareKeyStore } from '../device/keystore/software.ts';
import { rejectionOf } from './helpers/rejections.ts';

const kiosk = SoftwareKeyStore.ephemeral();
const kiosk2 = SoftwareKeyStore.ephemeral();
const verifier = SoftwareKeyStore.ephemeral();
const fleet = generateFleetKeyPair();
const NOW = 1_760_000_000;

const devices: TrustedKeyResolver = (kid) =>
  kid === kiosk.kid ? { owner: 'kiosk-0001', key: kiosk.publicJwk } : kid === kiosk2.kid ? { owner: 'kiosk-0002', key: kiosk2.publicJwk, revoked: true } : undefined;
const verifiers: TrustedKeyResolver = (kid) => (kid === verifier.kid ? { owner: 'verifier-a', key: verifier.publicJwk } : undefined);

async function claims(over: Partial<AttestationClaims> = {}): Promise<AttestationClaims> {
  const att_id = over.att_id ?? newAttestationId();
  return {
    ueid: 'kiosk-0001',
    iat: NOW,
    seq: 1,
    att_id,
    modality: 'face',
    template_format: 'biokiosk-face/1',
    model: { name: 'facenet-128', sha256: 'a'.repeat(64) },
    sensor: { make: 'Logitech', model: 'C920', serial: 'SN-0001', firmware: '1.0.3' },
    sealed: await sealContent({ attId: att_id, subject: 'subject-42', site: 'Lobby A', quality: 87.5, template: new Uint8Array(512).fill(7) }, fleet.publicJwk, newReplyKey()),
    ...over,
  };
}

const entry: DecisionRecord = {
  v: 1, verifier: 'verifier-a', decided_at: 1_700_000_000_000, ueid: 'kiosk-0001', att_id: newAttestationId(), att_hash: 'h'.repeat(43), seq: 1, sub: 'subject-42',
  modality: 'face', model_sha256: 'a'.repeat(64), site: 'Lobby A', decision: 'match', reasons: [], score: 0.83, distance: 0.31,
};
const receipt: Receipt = {
  leafIndex: 3, treeSize: 8, rootHash: 'r'.repeat(43), inclusionProof: ['a'.repeat(43), 'b'.repeat(43), 'c'.repeat(43)], checkpoint: 'example.com/log\n8\nAAAA\n\n\u2014 example.com/log AAAA\n',
  entry, salt: 's'.repeat(43), consistency: { from: 5, proof: ['d'.repeat(43)] },
};

async function expectRejected(p: Promise<unknown>, code: RejectionCode, detail?: RegExp): Promise<Rejection> {
  const r = await rejectionOf(p);
  expect(r.code).toBe(code);
  if (detail) expect(r.message).toMatch(detail);
  return r;
}

/** Signs arbitrary claims, bypassing createAttestation's schema check: what a buggy or hostile device might send. */
function signRaw(payload: object, signer = kiosk): Promise<string> {
  return signCompactJws({ kid: signer.kid, typ: ATTESTATION_TYP }, payload, signer);
}

describe('attestations', () => {
  it('round-trip: create, parse, hash', async () => {
    const c = await claims({ eat_nonce: encodeBase64url(new Uint8Array(32).fill(1)) });
    const jws = await createAttestation(c, kiosk);
    const parsed = await parseAttestation(jws, devices, { now: NOW + 10, expectedUeid: 'kiosk-0001' });
    expect(parsed.claims).toEqual(c);
    expect(parsed.kid).toBe(kiosk.kid);
    expect(parsed.hash).toBe(createHash('sha256').update(jws).digest('base64url'));
    expect(attestationHash(Buffer.from(jws))).toBe(parsed.hash);
  });

  it('createAttestation refuses claims that break the schema, saying where', async () => {
    await expect(createAttestation(await claims({ seq: 0 }), kiosk)).rejects.toThrow(/seq/);
    await expect(createAttestation({ ...(await claims()), extra: 1 } as AttestationClaims, kiosk)).rejects.toThrow(/Unrecognized key: "extra"/);
  });

  it('schema violations are malformed, naming the field path', async () => {
    const base = await claims();
    const cases: Array<[object, RegExp]> = [
      [{ ...base, seq: -1 }, /seq:/],
      [{ ...base, seq: 1.5 }, /seq:/],
      [{ ...base, seq: 2 ** 60 }, /seq:/],
      [{ ...base, modality: 'voice' }, /modality:/],
      [{ ...base, ueid: 'kiosk/0001' }, /ueid:/],
      [{ ...base, model: { name: 'm', sha256: 'XYZ' } }, /model\.sha256:/],
      [{ ...base, sensor: { ...base.sensor, serial: 'x'.repeat(200) } }, /sensor\.serial: Too big/],
      [{ ...base, sensor: { ...base.sensor, color: 'red' } }, /sensor: Unrecognized key: "color"/],
      [{ ...base, sealed: 'not-a-jwe' }, /sealed:/],
      [{ ...base, eat_nonce: 'short' }, /eat_nonce:/],
      [{ ...base, sensor: { ...base.sensor, make: 'a\nb' } }, /sensor\.make: must not contain control characters/],
      [{ ...base, admin: true }, /\(root\): Unrecognized key: "admin"/],
      // Subject and site travel sealed only: in the clear they are unknown members.
      [{ ...base, sub: 'subject-42' }, /\(root\): Unrecognized key: "sub"/],
      [{ ...base, site: 'Lobby A' }, /\(root\): Unrecognized key: "site"/],
      [(({ sealed: _s, ...rest }) => rest)(base), /sealed:/],
    ];
    for (const [payload, why] of cases) {
      const r = await expectRejected(parseAttestation(await signRaw(payload), devices, { now: NOW }), 'malformed', why);
      expect(r.message).toMatch(/^The message does not follow the protocol schema\. Attestation claims: /);
    }
  });

  it('binds the key to the device it names: unknown_device', async () => {
    // kiosk-0001's genuine key signing claims that say they come from kiosk-0003.
    const jws = await signRaw(await claims({ ueid: 'kiosk-0003' }));
    await expectRejected(parseAttestation(jws, devices, { now: NOW }), 'unknown_device', /not registered to device kiosk-0003/);
    // A key the registry does not know at all.
    const stranger = SoftwareKeyStore.ephemeral();
    await expectRejected(parseAttestation(await createAttestation(await claims(), stranger), devices, { now: NOW }), 'unknown_device');
  });

  it('revoked_device', async () => {
    const jws = await createAttestation(await claims({ ueid: 'kiosk-0002' }), kiosk2);
    await expectRejected(parseAttestation(jws, devices, { now: NOW }), 'revoked_device', /kiosk-0002/);
  });

  it('topic / claims mismatch is malformed', async () => {
    const jws = await createAttestation(await claims(), kiosk);
    await expectRejected(parseAttestation(jws, devices, { now: NOW, expectedUeid: 'kiosk-0009' }), 'malformed', /topic of kiosk-0009/);
  });

  it('expired and not_yet_valid', async () => {
    const jws = await createAttestation(await claims(), kiosk);
    await expectRejected(parseAttestation(jws, devices, { now: NOW + 86_401 }), 'expired');
    await expectRejected(parseAttestation(jws, devices, { now: NOW + 100, maxAgeSeconds: 60 }), 'expired', /100 s ago/);
    await expectRejected(parseAttestation(jws, devices, { now: NOW - 301 }), 'not_yet_valid');
    expect((await parseAttestation(jws, devices, { now: NOW - 299 })).claims.seq).toBe(1);
  });

  it('tampered attestation is bad_signature; oversized is refused before parsing', async () => {
    const jws = await createAttestation(await claims(), kiosk);
    const [h, , s] = jws.split('.');
    const forged = encodeBase64url(JSON.stringify({ ...(await claims()), seq: 999 }));
    await expectRejected(parseAttestation(`${h}.${forged}.${s}`, devices, { now: NOW }), 'bad_signature');
    await expectRejected(parseAttestation('a'.repeat(MAX_ATTESTATION_BYTES + 1), devices, { now: NOW }), 'oversized');
  });

  it('a verdict is never accepted as an attestation (typ)', async () => {
    const v = await createVerdict(verdictClaims('x'.repeat(43)), verifier);
    await expectRejected(parseAttestation(v, devices, { now: NOW }), 'malformed', /typ must be biokiosk-att\+jws/);
  });

  it('the largest schema-valid attestation fits MAX_ATTESTATION_BYTES', async () => {
    const big = '€'.repeat(128); // 3 UTF-8 bytes per UTF-16 unit: the worst case
    const part = (n: number) => 'A'.repeat(n);
    const sealed = `${part(100)}.${part(54)}.${part(16)}.${part(MAX_SEALED_JWE - 100 - 54 - 16 - 22 - 4)}.${part(22)}`;
    expect(sealed.length).toBe(MAX_SEALED_JWE);
    const c = await claims({
      ueid: 'k'.repeat(64), eat_nonce: 'n'.repeat(74), iat: 99_999_999_999.123, seq: Number.MAX_SAFE_INTEGER, att_id: 'i'.repeat(64),
      sealed, template_format: `${'f'.repeat(64)}/9999`, model: { name: big, sha256: 'f'.repeat(64) },
      sensor: { make: big, model: big, serial: big, firmware: big },
    });
    const jws = await createAttestation(c, kiosk);
    expect(jws.length).toBeLessThanOrEqual(MAX_ATTESTATION_BYTES);
    expect(jws.length).toBeGreaterThan(80_000);
    expect((await parseAttestation(jws, () => ({ owner: 'k'.repeat(64), key: kiosk.publicJwk }), { now: 99_999_999_999 })).claims.model.name).toBe(big);
  });

  it('text fields refuse control characters and lone surrogates but take any other Unicode', async () => {
    expect(SealedContent.shape.site.safeParse('Zürich — Hall 😀').success).toBe(true);
    expect(SealedContent.shape.site.safeParse('bad \ud800 surrogate').success).toBe(false);
    expect(SealedContent.shape.site.safeParse('tab\there').success).toBe(false);
  });

  it('a signed attestation in an envelope with another correlation id is malformed, before anything is bound to it', async () => {
    const c = await claims();
    const jws = await createAttestation(c, kiosk);
    expect((await authenticateAttestation(jws, devices, { expectedAttId: c.att_id })).claims.att_id).toBe(c.att_id);
    await expectRejected(authenticateAttestation(jws, devices, { expectedAttId: newAttestationId() }), 'malformed', /correlation id .* is not the attestation's att_id/);
  });
});

describe('sealed content', () => {
  it('carries subject, site, quality, template and reply key to the fleet only, bound to its attestation', async () => {
    const key = newReplyKey();
    const attId = newAttestationId();
    const template = Uint8Array.from({ length: 700 }, (_, i) => i & 0xff);
    const jwe = await sealContent({ attId, subject: 'patient 0042', site: 'Ward 3', quality: 61.5, template }, fleet.publicJwk, key);
    expect(jwe).not.toContain(encodeBase64url('patient'));
    const opened = openSealedContent(jwe, fleet.privateJwk, attId);
    expect(opened).toEqual({ subject: 'patient 0042', site: 'Ward 3', quality: 61.5, template, replyKey: key, scenario: null, consent: null, wantEligibility: false, stepOf: null, override: null });
    // The scenario, the consent (purpose, time, text version, language) and a step-up travel sealed with it.
    const consent = { purpose: 'hospital_admission', at: NOW, text: 'consent-biometric/1', lang: 'zh-Hans' as const };
    const stepOf = newAttestationId();
    const withConsent = await sealContent({ attId, subject: 'patient 0042', site: 'Ward 3', quality: 61.5, template, scenario: 'hospital_admission', consent, wantEligibility: true, stepOf }, fleet.publicJwk, key);
    expect(openSealedContent(withConsent, fleet.privateJwk, attId)).toMatchObject({ scenario: 'hospital_admission', consent, wantEligibility: true, stepOf, override: null });
    // A staff override carries no template.
    const override = { of: stepOf, reason: 'id_document_checked' as const, staff: 'pharmacist-07' };
    const byHand = openSealedContent(await sealContent({ attId, subject: 'patient 0042', site: 'Ward 3', quality: 0, template: new Uint8Array(0), override }, fleet.publicJwk, key), fleet.privateJwk, attId);
    expect(byHand).toMatchObject({ override, template: new Uint8Array(0) });
    // Lifted into another attestation: refused.
    await expectRejected(Promise.resolve().then(() => openSealedContent(jwe, fleet.privateJwk, newAttestationId())), 'malformed', /another attestation/);
    // Another fleet's key: undecryptable.
    await expectRejected(Promise.resolve().then(() => openSealedContent(jwe, generateFleetKeyPair().privateJwk, attId)), 'template_undecryptable');
    // Decrypts, but is not sealed content.
    const raw = await encryptTemplate(Buffer.from('{"v":1,"sub":"x"}'), fleet.publicJwk);
    await expectRejected(Promise.resolve().then(() => openSealedContent(raw, fleet.privateJwk, attId)), 'malformed', /Sealed content: /);
    const notJson = await encryptTemplate(Buffer.from([0xff, 1]), fleet.publicJwk);
    await expectRejected(Promise.resolve().then(() => openSealedContent(notJson, fleet.privateJwk, attId)), 'malformed', /not JSON/);
  });
});

function verdictClaims(attHash: string, over: Partial<VerdictClaims> = {}): VerdictClaims {
  return {
    iss: 'verifier-a', iat: NOW, att_id: newAttestationId(), att_hash: attHash, ueid: 'kiosk-0001', seq: 1,
    decision: 'match', reasons: [], receipt, ...over,
  };
}

describe('verdicts', () => {
  it('round-trip, naming the attestation by hash', async () => {
    const att = await createAttestation(await claims(), kiosk);
    const vc = verdictClaims(attestationHash(att));
    const jws = await createVerdict(vc, verifier);
    const parsed = await parseVerdict(jws, verifiers, { now: NOW, expectedUeid: 'kiosk-0001' });
    expect(parsed.claims).toEqual(vc);
    expect(parsed.claims.att_hash).toBe(attestationHash(att));
  });

  it('a rejected verdict carries reasons (built from Rejection: the code and its fixed sentence) and may lack seq', async () => {
    const reason = new Rejection('bad_signature', 'The ES256 signature does not verify with key \u0001\u2028evil.').toReason();
    expect(reason.message).toBe('The signature does not verify.');
    const vc = verdictClaims('h'.repeat(43), { decision: 'rejected', reasons: [reason], seq: null });
    const parsed = await parseVerdict(await createVerdict(vc, verifier), verifiers, { now: NOW });
    expect(parsed.claims.reasons[0]?.code).toBe('bad_signature');
    await expect(createVerdict(verdictClaims('h'.repeat(43), { decision: 'rejected' }), verifier)).rejects.toThrow(/reasons: a rejected verdict must give at least one reason/);
  });

  it('rejects verdicts from keys not registered to the issuer, forged, misaddressed, or with bad receipts', async () => {
    const vc = verdictClaims('h'.repeat(43));
    const jws = await createVerdict(vc, verifier);
    // A kiosk key is not a verifier key.
    await expectRejected(parseVerdict(await createVerdict(vc, kiosk), verifiers, { now: NOW }), 'unknown_device');
    // Claims say another verifier.
    await expectRejected(parseVerdict(await createVerdict({ ...vc, iss: 'verifier-b' }, verifier), verifiers, { now: NOW }), 'unknown_device', /verifier-b/);
    await expectRejected(parseVerdict(jws, verifiers, { now: NOW, expectedUeid: 'kiosk-0002' }), 'malformed', /addressed to device kiosk-0001/);
    const [h, , s] = jws.split('.');
    await expectRejected(parseVerdict(`${h}.${encodeBase64url(JSON.stringify({ ...vc, decision: 'no_match' }))}.${s}`, verifiers, { now: NOW }), 'bad_signature');
    const badReceipt = { ...vc, receipt: { ...receipt, leafIndex: 8 } };
    const signed = await signCompactJws({ kid: verifier.kid, typ: 'biokiosk-verdict+jws' }, badReceipt, verifier);
    await expectRejected(parseVerdict(signed, verifiers, { now: NOW }), 'malformed', /receipt\.leafIndex: leafIndex must be below treeSize/);
    await expectRejected(parseVerdict('x'.repeat(MAX_VERDICT_BYTES + 1), verifiers, { now: NOW }), 'oversized');
  });
});

describe('verdict size bound', () => {
  it('the largest schema-valid verdict fits MAX_VERDICT_BYTES', async () => {
    const reasons = Array.from({ length: 16 }, () => ({ code: 'template_undecryptable' as const, message: '€'.repeat(512) }));
    const big: Receipt = {
      leafIndex: Number.MAX_SAFE_INTEGER - 1, treeSize: Number.MAX_SAFE_INTEGER, rootHash: 'r'.repeat(43), inclusionProof: Array(64).fill('p'.repeat(43)), checkpoint: '\u2014'.repeat(1365) /* 4,095 bytes */, salt: 's'.repeat(43),
      entry: { ...entry, verifier: 'v'.repeat(64), ueid: 'u'.repeat(64), att_id: 'i'.repeat(64), seq: Number.MAX_SAFE_INTEGER, decided_at: Number.MAX_SAFE_INTEGER, sub: '€'.repeat(128), site: '€'.repeat(128), reasons: Array(16).fill('template_undecryptable'), score: -1.2345678901234567e-300, distance: -1.2345678901234567e-300 },
      consistency: { from: Number.MAX_SAFE_INTEGER, proof: Array(MAX_CONSISTENCY_PROOF).fill('c'.repeat(43)) },
    };
    const vc = verdictClaims('h'.repeat(43), { iss: 'v'.repeat(64), ueid: 'u'.repeat(64), att_id: 'i'.repeat(64), seq: Number.MAX_SAFE_INTEGER, decision: 'rejected', reasons, receipt: big, iat: 99_999_999_999.123 });
    const jws = await createVerdict(vc, verifier);
    expect(jws.length).toBeLessThanOrEqual(MAX_VERDICT_BYTES);
    expect(jws.length).toBeGreaterThan(48_000);
  });
});

describe('challenge and status schemas', () => {
  it('accept good messages and refuse unknown keys', () => {
    expect(ChallengeResponse.safeParse({ req_id: newAttestationId(), nonce: encodeBase64url(new Uint8Array(32)), expires_at: NOW + 60 }).success).toBe(true);
    expect(ChallengeResponse.safeParse({ req_id: newAttestationId(), nonce: 'x', expires_at: NOW }).success).toBe(false);
    expect(DeviceStatus.safeParse({ state: 'offline', ueid: 'kiosk-0001', at: NOW, version: '0.1.0' }).success).toBe(true);
    expect(DeviceStatus.safeParse({ state: 'offline', ueid: 'kiosk-0001', at: NOW, version: '0.1.0', extra: 1 }).success).toBe(false);
  });
});
