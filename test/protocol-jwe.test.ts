import { randomBytes } from 'node:crypto';
import { CompactEncrypt, decodeProtectedHeader } from 'jose';
import { describe, expect, it } from 'vitest';
import { decodeBase64url, encodeBase64url } from '../protocol/base64url.ts';
import { decryptTemplate, encryptTemplate, generateFleetKeyPair, MAX_TEMPLATE_BYTES } from '../protocol/jwe.ts';
import { Rejection, type RejectionCode } from '../protocol/rejections.ts';
import { jwkThumbprint } from '../protocol/signer.ts';

const fleet = generateFleetKeyPair();
const template = randomBytes(512);

async function expectRejected(p: Promise<unknown>, code: RejectionCode): Promise<void> {
  const e = await p.then(() => undefined, (err: unknown) => err);
  expect(e).toBeInstanceOf(Rejection);
  expect((e as Rejection).code).toBe(code);
}

/** Flips one bit in part `i` (0 header, 1 encrypted key, 2 IV, 3 ciphertext, 4 tag) of a compact JWE. */
function flip(jwe: string, i: number): string {
  const parts = jwe.split('.');
  const bytes = decodeBase64url(parts[i]!)!;
  bytes[Math.floor(bytes.length / 2)]! ^= 0x01;
  parts[i] = encodeBase64url(bytes);
  return parts.join('.');
}

describe('template JWE', () => {
  it('fleet key pair: P-256 ECDH, kid = thumbprint, private part only in privateJwk', () => {
    expect(fleet.publicJwk).toMatchObject({ kty: 'EC', crv: 'P-256', use: 'enc', alg: 'ECDH-ES+A256KW' });
    expect(fleet.publicJwk.d).toBeUndefined();
    expect(typeof fleet.privateJwk.d).toBe('string');
    expect(fleet.publicJwk.kid).toBe(jwkThumbprint(fleet.publicJwk as Record<string, unknown>));
  });

  it('round-trips with pinned algorithms and the fleet key kid in the header', async () => {
    const jwe = await encryptTemplate(template, fleet.publicJwk);
    expect(decodeProtectedHeader(jwe)).toMatchObject({ alg: 'ECDH-ES+A256KW', enc: 'A256GCM', kid: fleet.publicJwk.kid });
    expect(Buffer.from(await decryptTemplate(jwe, fleet.privateJwk))).toEqual(template);
    // By kid, for a verifier holding several fleet keys.
    const old = generateFleetKeyPair();
    const byKid = (kid: string | undefined) => (kid === fleet.publicJwk.kid ? fleet.privateJwk : kid === old.publicJwk.kid ? old.privateJwk : undefined);
    expect(Buffer.from(await decryptTemplate(jwe, byKid))).toEqual(template);
    expect(Buffer.from(await decryptTemplate(await encryptTemplate(template, old.publicJwk), byKid))).toEqual(template);
  });

  it('each encryption is fresh (ephemeral key, IV)', async () => {
    expect(await encryptTemplate(template, fleet.publicJwk)).not.toBe(await encryptTemplate(template, fleet.publicJwk));
  });

  it('a flipped bit anywhere is template_undecryptable', async () => {
    const jwe = await encryptTemplate(template, fleet.publicJwk);
    for (const part of [0, 1, 2, 3, 4]) await expectRejected(decryptTemplate(flip(jwe, part), fleet.privateJwk), 'template_undecryptable');
  });

  it('the wrong recipient key, an unknown kid, or garbage is template_undecryptable', async () => {
    const jwe = await encryptTemplate(template, fleet.publicJwk);
    await expectRejected(decryptTemplate(jwe, generateFleetKeyPair().privateJwk), 'template_undecryptable');
    await expectRejected(decryptTemplate(jwe, () => undefined), 'template_undecryptable');
    await expectRejected(decryptTemplate('a.b.c.d.e', fleet.privateJwk), 'template_undecryptable');
    await expectRejected(decryptTemplate('not a jwe', fleet.privateJwk), 'template_undecryptable');
  });

  it('other algorithms chosen by the sender are refused (ECDH-ES direct, A128GCM)', async () => {
    const { alg: _alg, ...anyAlg } = fleet.publicJwk;
    const direct = await new CompactEncrypt(template).setProtectedHeader({ alg: 'ECDH-ES', enc: 'A256GCM' }).encrypt(anyAlg);
    await expectRejected(decryptTemplate(direct, fleet.privateJwk), 'template_undecryptable');
    const weak = await new CompactEncrypt(template).setProtectedHeader({ alg: 'ECDH-ES+A256KW', enc: 'A128GCM' }).encrypt(fleet.publicJwk);
    await expectRejected(decryptTemplate(weak, fleet.privateJwk), 'template_undecryptable');
  });

  it('size bounds: oversized JWE refused before decrypting; oversized plaintext refused when encrypting', async () => {
    const jwe = await encryptTemplate(template, fleet.publicJwk);
    await expectRejected(decryptTemplate(jwe, fleet.privateJwk, { maxBytes: 100 }), 'oversized');
    await expect(encryptTemplate(new Uint8Array(MAX_TEMPLATE_BYTES + 1), fleet.publicJwk)).rejects.toMatchObject({ code: 'TemplateTooLarge' });
    const max = await encryptTemplate(new Uint8Array(MAX_TEMPLATE_BYTES), fleet.publicJwk);
    expect((await decryptTemplate(max, fleet.privateJwk)).byteLength).toBe(MAX_TEMPLATE_BYTES);
  });
});
