import { createHash, generateKeyPairSync } from 'node:crypto';
import { calculateJwkThumbprint, compactVerify, CompactSign } from 'jose';
import { describe, expect, it } from 'vitest';
import { decodeBase64url, encodeBase64url, isBase64url } from '../protocol/base64url.ts';
import { ATTESTATION_TYP, signCompactJws, VERDICT_TYP, verifyCompactJws, type KeyResolver } from '../protocol/jws.ts';
import { isRejection, Rejection, REJECTION_SENTENCES, type RejectionCode } from '../protocol/rejections.ts';
import { jwkThumbprint } from '../protocol/signer.ts';
import { SoftwareKeyStore } from '../device/keystore/software.ts';
import { rejectionOf } from './helpers/rejections.ts';

const signer = SoftwareKeyStore.ephemeral();
const other = SoftwareKeyStore.ephemeral();
const resolve: KeyResolver = (kid) => (kid === signer.kid ? signer.publicJwk : kid === other.kid ? other.publicJwk : undefined);
const opts = { maxBytes: 4096, typ: ATTESTATION_TYP } as const;


async function expectRejected(p: Promise<unknown>, code: RejectionCode, detail?: RegExp): Promise<void> {
  const r = await rejectionOf(p);
  expect(r.code).toBe(code);
  expect(r.kind).toBe('input');
  if (detail) expect(r.message).toMatch(detail);
}

function header(h: object): string {
  return encodeBase64url(JSON.stringify(h));
}

describe('base64url', () => {
  it('accepts canonical unpadded base64url only', () => {
    expect(decodeBase64url('AQID')?.toString('hex')).toBe('010203');
    expect(decodeBase64url('AQI')?.toString('hex')).toBe('0102');
    expect(decodeBase64url('AQ=')).toBeUndefined(); // padding
    expect(decodeBase64url('A+/B')).toBeUndefined(); // base64, not base64url
    expect(decodeBase64url('AQIDB')).toBeUndefined(); // impossible length
    expect(decodeBase64url('AR')).toBeUndefined(); // non-zero unused bits: a second encoding of 0x01
    expect(isBase64url('a b')).toBe(false);
  });
});

describe('compact JWS', () => {
  it('round-trips, and the header is exactly alg, kid, typ', async () => {
    const jws = await signCompactJws({ kid: signer.kid, typ: ATTESTATION_TYP }, { hello: 'world', n: 1 }, signer);
    const v = await verifyCompactJws(jws, resolve, opts);
    expect(v.header).toEqual({ alg: 'ES256', kid: signer.kid, typ: ATTESTATION_TYP });
    expect(v.payload).toEqual({ hello: 'world', n: 1 });
    // Bytes work as well as strings (MQTT payloads are Buffers).
    expect((await verifyCompactJws(Buffer.from(jws), resolve, opts)).payload).toEqual({ hello: 'world', n: 1 });
  });

  it('signs in a form standard ES256 verification (jose compactVerify) accepts', async () => {
    const jws = await signCompactJws({ kid: signer.kid, typ: VERDICT_TYP }, { x: 1 }, signer);
    const { payload, protectedHeader } = await compactVerify(jws, signer.publicJwk);
    expect(JSON.parse(new TextDecoder().decode(payload))).toEqual({ x: 1 });
    expect(protectedHeader.kid).toBe(signer.kid);
  });

  it('verifies JWS made by jose (interop the other way)', async () => {
    const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const pub = publicKey.export({ format: 'jwk' });
    const kid = jwkThumbprint(pub as Record<string, unknown>);
    const jws = await new CompactSign(new TextEncoder().encode('{"a":1}')).setProtectedHeader({ alg: 'ES256', kid, typ: ATTESTATION_TYP }).sign(privateKey);
    expect((await verifyCompactJws(jws, () => publicKey, opts)).payload).toEqual({ a: 1 });
  });

  it('tampering with one payload byte is bad_signature', async () => {
    const jws = await signCompactJws({ kid: signer.kid, typ: ATTESTATION_TYP }, { amount: 100 }, signer);
    const [h, p, s] = jws.split('.') as [string, string, string];
    const tampered = encodeBase64url(JSON.stringify({ amount: 900 }));
    await expectRejected(verifyCompactJws(`${h}.${tampered}.${s}`, resolve, opts), 'bad_signature');
    // Flip a bit inside the payload characters too (still valid base64url).
    const i = Math.floor(p.length / 2);
    const flipped = p.slice(0, i) + (p[i] === 'A' ? 'B' : 'A') + p.slice(i + 1);
    await expectRejected(verifyCompactJws(`${h}.${flipped}.${s}`, resolve, opts), 'bad_signature');
    // And in the signature.
    const sig = decodeBase64url(s)!;
    sig[10]! ^= 1;
    await expectRejected(verifyCompactJws(`${h}.${p}.${encodeBase64url(sig)}`, resolve, opts), 'bad_signature');
  });

  it('a signature of the wrong length (e.g. DER) is bad_signature', async () => {
    const jws = await signCompactJws({ kid: signer.kid, typ: ATTESTATION_TYP }, {}, signer);
    const [h, p] = jws.split('.');
    await expectRejected(verifyCompactJws(`${h}.${p}.${encodeBase64url(new Uint8Array(70))}`, resolve, opts), 'bad_signature');
  });

  it('a kid nobody registered is unknown_device; another registered key is bad_signature', async () => {
    const jws = await signCompactJws({ kid: signer.kid, typ: ATTESTATION_TYP }, { a: 1 }, signer);
    const [, p, s] = jws.split('.');
    const unknownKid = 'A'.repeat(43);
    await expectRejected(verifyCompactJws(`${header({ alg: 'ES256', kid: unknownKid, typ: ATTESTATION_TYP })}.${p}.${s}`, resolve, opts), 'unknown_device', /AAAA/);
    // Swapping in another registered device's kid: found, but its key does not verify the signature.
    await expectRejected(verifyCompactJws(`${header({ alg: 'ES256', kid: other.kid, typ: ATTESTATION_TYP })}.${p}.${s}`, resolve, opts), 'bad_signature');
  });

  it('checks size before parsing anything: oversized', async () => {
    await expectRejected(verifyCompactJws('x'.repeat(4097), resolve, opts), 'oversized', /4097/);
    await expectRejected(verifyCompactJws(Buffer.alloc(5000, 0x2e), resolve, opts), 'oversized');
  });

  it('structural problems are malformed, with the reason', async () => {
    const good = await signCompactJws({ kid: signer.kid, typ: ATTESTATION_TYP }, { a: 1 }, signer);
    const [, p, s] = good.split('.') as [string, string, string];
    const cases: Array<[string, RegExp]> = [
      ['a.b', /three/],
      ['a.b.c.d', /three/],
      [`${header({ alg: 'ES256', kid: signer.kid, typ: ATTESTATION_TYP })}=.${p}.${s}`, /header is not base64url/],
      [`${encodeBase64url('{not json')}.${p}.${s}`, /header is not JSON/],
      [`${encodeBase64url('[1]')}.${p}.${s}`, /not a JSON object/],
      [`${header({ alg: 'none', kid: signer.kid, typ: ATTESTATION_TYP })}.${p}.`, /alg must be ES256/],
      [`${header({ alg: 'ES384', kid: signer.kid, typ: ATTESTATION_TYP })}.${p}.${s}`, /alg must be ES256/],
      [`${header({ alg: 'HS256', kid: signer.kid, typ: ATTESTATION_TYP })}.${p}.${s}`, /alg must be ES256/],
      [`${header({ alg: 'ES256', typ: ATTESTATION_TYP })}.${p}.${s}`, /no kid/],
      [`${header({ alg: 'ES256', kid: signer.kid, typ: VERDICT_TYP })}.${p}.${s}`, /typ must be biokiosk-att\+jws/],
      [`${header({ alg: 'ES256', kid: signer.kid, typ: ATTESTATION_TYP, crit: ['exp'] })}.${p}.${s}`, /unexpected members: crit/],
      [`${header({ alg: 'ES256', kid: signer.kid, typ: ATTESTATION_TYP, jwk: signer.publicJwk })}.${p}.${s}`, /unexpected members: jwk/],
      [`${good.slice(0, good.lastIndexOf('.'))}.a+b/`, /signature part is not base64url/],
    ];
    for (const [jws, why] of cases) await expectRejected(verifyCompactJws(jws, resolve, opts), 'malformed', why);
  });

  it('a validly signed payload that is not JSON is malformed (and is only parsed after the signature verifies)', async () => {
    const h = header({ alg: 'ES256', kid: signer.kid, typ: ATTESTATION_TYP });
    const p = encodeBase64url('not json');
    const input = `${h}.${p}`;
    const sig = await signer.sign(createHash('sha256').update(input).digest());
    await expectRejected(verifyCompactJws(`${input}.${encodeBase64url(sig)}`, resolve, opts), 'malformed', /not JSON/);
    // The same payload with a bad signature is reported as bad_signature, not malformed.
    await expectRejected(verifyCompactJws(`${input}.${encodeBase64url(new Uint8Array(64))}`, resolve, opts), 'bad_signature');
  });

  it('passes through rejections thrown by the key resolver (e.g. revoked)', async () => {
    const jws = await signCompactJws({ kid: signer.kid, typ: ATTESTATION_TYP }, {}, signer);
    await expectRejected(verifyCompactJws(jws, () => { throw new Rejection('revoked_device', 'test'); }, opts), 'revoked_device');
  });

  it('refuses a registry that files a key under a kid that is not its thumbprint', async () => {
    const jws = await signCompactJws({ kid: signer.kid, typ: ATTESTATION_TYP }, {}, signer);
    await expect(verifyCompactJws(jws, () => other.publicJwk, opts)).rejects.toMatchObject({ code: 'KeyMismatch', kind: 'internal' });
  });

  it('refuses to sign when the header kid is not the signer’s, or the signer misbehaves', async () => {
    await expect(signCompactJws({ kid: other.kid, typ: ATTESTATION_TYP }, {}, signer)).rejects.toMatchObject({ code: 'SignerMismatch' });
    const derSigner = { kid: signer.kid, publicJwk: signer.publicJwk, sign: async () => new Uint8Array(71) };
    await expect(signCompactJws({ kid: signer.kid, typ: ATTESTATION_TYP }, {}, derSigner)).rejects.toMatchObject({ code: 'SignerFault' });
    const wrongKey = { kid: signer.kid, publicJwk: signer.publicJwk, sign: (d: Uint8Array) => other.sign(d) };
    await expect(signCompactJws({ kid: signer.kid, typ: ATTESTATION_TYP }, {}, wrongKey)).rejects.toMatchObject({ code: 'SignerFault' });
  });

  it('isRejection narrows by code', () => {
    const r = new Rejection('expired', 'x');
    expect(isRejection(r)).toBe(true);
    expect(isRejection(r, 'expired')).toBe(true);
    expect(isRejection(r, 'malformed')).toBe(false);
    // A verdict carries the code's fixed sentence, never the detail (which may quote the sender).
    expect(r.toReason()).toEqual({ code: 'expired', message: REJECTION_SENTENCES.expired });
    expect(r.message).toBe(`${REJECTION_SENTENCES.expired} x`);
    expect(r.toJSON().code).toBe('expired');
  });
});

describe('RFC 7638 JWK thumbprint', () => {
  it('matches the RFC 7638 §3.1 example', async () => {
    const rfcKey = {
      kty: 'RSA',
      n: '0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw',
      e: 'AQAB',
      alg: 'RS256',
      kid: '2011-04-29',
    };
    expect(jwkThumbprint(rfcKey)).toBe('NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs');
    expect(await calculateJwkThumbprint(rfcKey)).toBe('NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs');
  });

  it('a signer’s kid is the thumbprint of its public key (jose and a hand-built canonical JSON agree)', async () => {
    const { kty, crv, x, y } = signer.publicJwk;
    const manual = createHash('sha256').update(`{"crv":"${crv}","kty":"${kty}","x":"${x}","y":"${y}"}`).digest('base64url');
    expect(signer.kid).toBe(manual);
    expect(signer.kid).toBe(await calculateJwkThumbprint({ kty, crv, x, y }));
    // Extra members (use, alg, kid) do not change it.
    expect(jwkThumbprint({ ...signer.publicJwk, use: 'sig', alg: 'ES256', kid: 'whatever' })).toBe(signer.kid);
  });
});
