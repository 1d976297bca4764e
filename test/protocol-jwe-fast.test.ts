/**
 * The fast (node:crypto, synchronous) template decryption path against jose's: the same plaintexts for what jose
 * encrypts, the same rejection codes for everything tampered with or not allowed. A small JWE encoder written
 * here from node:crypto (checked against jose first) crafts the well-formed but unwelcome JWEs jose would not make.
 */
import {
  createCipheriv,
  createECDH,
  createHash,
  createPrivateKey,
  createPublicKey,
  generateKeyPairSync,
  randomBytes,
  randomInt,
  type JsonWebKey,
} from 'node:crypto';
import { deflateRawSync } from 'node:zlib';
import { CompactEncrypt, compactDecrypt } from 'jose';
import { describe, expect, it } from 'vitest';
import { decodeBase64url, encodeBase64url } from '../protocol/base64url.ts';
import { MAX_SEALED_JWE } from '../protocol/claims.ts';
import { concatKdf, encryptTemplateJweSync, fleetEcdh, parseTemplateJwe } from '../protocol/jwe-fast.ts';
import {
  decryptTemplate,
  decryptTemplateSync,
  decryptTemplateWithJose,
  encryptTemplate,
  generateFleetKeyPair,
  MAX_TEMPLATE_BYTES,
  type DecryptionKey,
} from '../protocol/jwe.ts';
import { Rejection, type RejectionCode } from '../protocol/rejections.ts';

const fleet = generateFleetKeyPair();
const other = generateFleetKeyPair();
const template = randomBytes(512);

type Opts = { maxBytes?: number };

async function outcome(p: Promise<Uint8Array>): Promise<{ ok: Buffer } | { code: RejectionCode; message: string }> {
  try {
    return { ok: Buffer.from(await p) };
  } catch (e) {
    expect(e).toBeInstanceOf(Rejection);
    return { code: (e as Rejection).code, message: (e as Rejection).message };
  }
}

/** Both paths decrypt `jwe` to the same bytes; returns them. */
async function bothDecrypt(jwe: string, key: DecryptionKey = fleet.privateJwk): Promise<Buffer> {
  const fast = await outcome(decryptTemplate(jwe, key));
  const slow = await outcome(decryptTemplateWithJose(jwe, key));
  expect(fast).toHaveProperty('ok');
  expect(slow).toHaveProperty('ok');
  const bytes = (fast as { ok: Buffer }).ok;
  expect(bytes.equals((slow as { ok: Buffer }).ok)).toBe(true);
  expect(Buffer.from(decryptTemplateSync(jwe, key)).equals(bytes)).toBe(true);
  return bytes;
}

/** Both paths refuse `jwe` with `code`; returns the fast path's message (which names the failing step). */
async function bothReject(jwe: string, code: RejectionCode, key: DecryptionKey = fleet.privateJwk, opts: Opts = {}): Promise<string> {
  const fast = await outcome(decryptTemplate(jwe, key, opts));
  const slow = await outcome(decryptTemplateWithJose(jwe, key, opts));
  expect(fast, 'fast path').toMatchObject({ code });
  expect(slow, 'jose path').toMatchObject({ code });
  expect(() => decryptTemplateSync(jwe, key, opts)).toThrow(Rejection);
  return (fast as { message: string }).message;
}

const parts = (jwe: string): string[] => jwe.split('.');
const headerOf = (jwe: string): Record<string, unknown> => JSON.parse(decodeBase64url(parts(jwe)[0]!)!.toString('utf8')) as Record<string, unknown>;

/** Replaces the protected header (the rest stays: the AAD no longer matches, but the header checks come first). */
function withHeader(jwe: string, edit: (h: Record<string, unknown>) => Record<string, unknown>): string {
  const p = parts(jwe);
  p[0] = encodeBase64url(JSON.stringify(edit(headerOf(jwe))));
  return p.join('.');
}

/** Flips bit `bit` of byte `at` (negative: from the end) of part `i` (0 header, 1 encrypted key, 2 IV, 3 ciphertext, 4 tag). */
function flip(jwe: string, i: number, at: number, bit = 0): string {
  const p = parts(jwe);
  const bytes = decodeBase64url(p[i]!)!;
  const j = at < 0 ? bytes.length + at : at;
  bytes[j]! ^= 1 << bit;
  p[i] = encodeBase64url(bytes);
  return p.join('.');
}

// --- a JWE encoder from node:crypto, for JWEs jose would not produce -----------------------------------------

const P256_P = 0xffffffff00000001000000000000000000000000ffffffffffffffffffffffffn;
const P256_B = 0x5ac635d8aa3a93e7b3ebbd55769886bc651d06b0cc53b0f63bce3c3e27d2604bn;
const coord = (n: bigint): string => encodeBase64url(Buffer.from(n.toString(16).padStart(64, '0'), 'hex'));
function modPow(a: bigint, e: bigint, m: bigint): bigint {
  let r = 1n;
  a %= m;
  for (; e > 0n; e >>= 1n, a = (a * a) % m) if (e & 1n) r = (r * a) % m;
  return r;
}

/** Concat KDF written again, independently of jwe-fast.ts (SHA-256, lengths in bits). */
function refKdf(z: Uint8Array, algorithmId: string, bits: number, apu: Uint8Array = new Uint8Array(0), apv: Uint8Array = new Uint8Array(0)): Buffer {
  const u32 = (n: number) => Buffer.from([n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255]);
  const lp = (b: Uint8Array) => Buffer.concat([u32(b.length), b]);
  const info = Buffer.concat([lp(Buffer.from(algorithmId)), lp(apu), lp(apv), u32(bits)]);
  const out: Buffer[] = [];
  for (let i = 1; out.length * 32 < bits / 8; i++) out.push(createHash('sha256').update(u32(i)).update(z).update(info).digest());
  return Buffer.concat(out).subarray(0, bits / 8);
}

interface CraftOpts {
  header?: (h: Record<string, unknown>) => Record<string, unknown>;
  kdfAlg?: string;
  cekBytes?: number;
  ivBytes?: number;
  tagBytes?: number;
}

function craft(plaintext: Uint8Array, recipient: JsonWebKey, o: CraftOpts = {}): string {
  const eph = createECDH('prime256v1');
  eph.generateKeys();
  const pub = eph.getPublicKey();
  const z = eph.computeSecret(Buffer.concat([Buffer.of(4), decodeBase64url(recipient.x!)!, decodeBase64url(recipient.y!)!]));
  let header: Record<string, unknown> = {
    alg: 'ECDH-ES+A256KW',
    enc: 'A256GCM',
    kid: recipient.kid,
    epk: { kty: 'EC', crv: 'P-256', x: encodeBase64url(pub.subarray(1, 33)), y: encodeBase64url(pub.subarray(33)) },
  };
  if (o.header) header = o.header(header);
  const dec = (v: unknown) => (typeof v === 'string' ? decodeBase64url(v)! : undefined);
  const kek = refKdf(z, o.kdfAlg ?? 'ECDH-ES+A256KW', 256, dec(header.apu), dec(header.apv));
  const cek = randomBytes(o.cekBytes ?? 32);
  const kw = createCipheriv('id-aes256-wrap', kek, Buffer.from('A6A6A6A6A6A6A6A6', 'hex'));
  const encryptedKey = Buffer.concat([kw.update(cek), kw.final()]);
  const protectedPart = encodeBase64url(JSON.stringify(header));
  const iv = randomBytes(o.ivBytes ?? 12);
  const gcm = createCipheriv(cek.length === 16 ? 'aes-128-gcm' : 'aes-256-gcm', cek.length === 16 ? cek : cek.subarray(0, 32), iv, { authTagLength: o.tagBytes ?? 16 });
  gcm.setAAD(Buffer.from(protectedPart, 'ascii'));
  const ct = Buffer.concat([gcm.update(plaintext), gcm.final()]);
  return [protectedPart, encryptedKey, iv, ct, gcm.getAuthTag()].map((x) => (typeof x === 'string' ? x : encodeBase64url(x))).join('.');
}

// ------------------------------------------------------------------------------------------------------------

describe('template JWE: fast path vs jose', () => {
  it('decrypts what jose encrypts, identically, for template sizes 0 B to 44 KiB', async () => {
    const sizes = [0, 1, 15, 16, 17, 31, 32, 33, 511, 512, 513, 4095, 4096, 8191, 16384, MAX_TEMPLATE_BYTES - 1, MAX_TEMPLATE_BYTES];
    while (sizes.length < 60) sizes.push(randomInt(MAX_TEMPLATE_BYTES + 1));
    for (const n of sizes) {
      const pt = randomBytes(n);
      const jwe = await encryptTemplate(pt, fleet.publicJwk);
      expect((await bothDecrypt(jwe)).equals(pt), `size ${n}`).toBe(true);
    }
  });

  it('decrypts jose JWEs with apu and/or apv (the KDF includes them), and checks them', async () => {
    const header = { alg: 'ECDH-ES+A256KW', enc: 'A256GCM', kid: fleet.publicJwk.kid as string };
    const cases: { apu?: Uint8Array; apv?: Uint8Array }[] = [
      { apu: Buffer.from('Alice'), apv: Buffer.from('Bob') },
      { apu: randomBytes(32) },
      { apv: randomBytes(7) },
      { apu: new Uint8Array(0), apv: randomBytes(1) },
      { apu: randomBytes(300), apv: randomBytes(65) },
    ];
    for (const kmp of cases) {
      for (const n of [0, 100, randomInt(MAX_TEMPLATE_BYTES + 1)]) {
        const pt = randomBytes(n);
        const jwe = await new CompactEncrypt(pt).setProtectedHeader(header).setKeyManagementParameters(kmp).encrypt(createPublicKey({ key: fleet.publicJwk, format: 'jwk' }));
        if (kmp.apu) expect(headerOf(jwe).apu).toBe(encodeBase64url(kmp.apu));
        expect((await bothDecrypt(jwe)).equals(pt)).toBe(true);
        // apu/apv are KDF inputs: changing one changes the key-encryption key (the header checks pass).
        if (kmp.apu?.length) expect(await bothReject(withHeader(jwe, (h) => ({ ...h, apu: encodeBase64url(randomBytes(kmp.apu!.length)) })), 'template_undecryptable')).toMatch(/A256KW unwrap/);
      }
    }
  });

  it('the node:crypto test encoder agrees with jose (so what it crafts below is otherwise valid)', async () => {
    for (const n of [0, 1, 512, 20000]) {
      const pt = randomBytes(n);
      const apu = encodeBase64url(randomBytes(5));
      const jwe = craft(pt, fleet.publicJwk, { header: (h) => ({ ...h, apu }) });
      const { plaintext } = await compactDecrypt(jwe, createPrivateKey({ key: fleet.privateJwk, format: 'jwk' }));
      expect(Buffer.from(plaintext).equals(pt)).toBe(true);
      expect((await bothDecrypt(jwe)).equals(pt)).toBe(true);
    }
  });

  it('takes the fleet key as a JWK, a private KeyObject, or a lookup by kid; imports it once', async () => {
    const jwe = await encryptTemplate(template, fleet.publicJwk);
    const ko = createPrivateKey({ key: fleet.privateJwk, format: 'jwk' });
    expect((await bothDecrypt(jwe, ko)).equals(template)).toBe(true);
    const seen: (string | undefined)[] = [];
    const byKid = (kid: string | undefined) => (seen.push(kid), kid === fleet.publicJwk.kid ? fleet.privateJwk : kid === other.publicJwk.kid ? other.privateJwk : undefined);
    expect((await bothDecrypt(jwe, byKid)).equals(template)).toBe(true);
    expect((await bothDecrypt(await encryptTemplate(template, other.publicJwk), byKid)).equals(template)).toBe(true);
    expect(seen).toContain(fleet.publicJwk.kid);
    // No kid in the header: the lookup is asked with undefined.
    const noKid = craft(template, fleet.publicJwk, { header: ({ kid: _kid, ...h }) => h });
    expect((await bothDecrypt(noKid, (kid) => (kid === undefined ? fleet.privateJwk : undefined))).equals(template)).toBe(true);
    // Cached per key object.
    expect(fleetEcdh(fleet.privateJwk)).toBe(fleetEcdh(fleet.privateJwk));
    expect(fleetEcdh(ko)).toBe(fleetEcdh(ko));
  });

  it('returns a Uint8Array of its own (offset 0, whole buffer)', () => {
    return encryptTemplate(template, fleet.publicJwk).then((jwe) => {
      const out = decryptTemplateSync(jwe, fleet.privateJwk);
      expect(out.byteOffset).toBe(0);
      expect(out.buffer.byteLength).toBe(template.length);
    });
  });

  it('Concat KDF: RFC 7518 Appendix C test vector, and the ECDH-ES+A256KW instance against a second implementation', () => {
    const z = Buffer.from([158, 86, 217, 29, 129, 113, 53, 211, 114, 131, 66, 131, 191, 132, 38, 156, 251, 49, 110, 163, 218, 128, 106, 72, 246, 218, 167, 121, 140, 254, 144, 196]);
    expect(encodeBase64url(concatKdf(z, Buffer.from('Alice'), Buffer.from('Bob'), 'A128GCM', 128))).toBe('VqqN6vgjbSBcIijNcacQGg');
    for (let i = 0; i < 20; i++) {
      const zz = randomBytes(32);
      const apu = i % 3 === 0 ? undefined : randomBytes(i);
      const apv = i % 2 === 0 ? undefined : randomBytes(i + 1);
      expect(concatKdf(zz, apu, apv).equals(refKdf(zz, 'ECDH-ES+A256KW', 256, apu, apv))).toBe(true);
    }
    expect(concatKdf(z, undefined, undefined, 'X', 512).length).toBe(64); // more than one round
    expect(concatKdf(z, undefined, undefined, 'X', 512).equals(refKdf(z, 'X', 512))).toBe(true);
  });

  it('the KDF AlgorithmID is the alg (key agreement with key wrapping), not the enc or the wrap algorithm alone', async () => {
    for (const kdfAlg of ['A256GCM', 'A256KW', 'ECDH-ES']) {
      expect(await bothReject(craft(template, fleet.publicJwk, { kdfAlg }), 'template_undecryptable')).toMatch(/A256KW unwrap/);
    }
  });
});

describe('template JWE: tampering and refusals, the same on both paths', () => {
  it('a flipped bit at the start, middle or end of every part', async () => {
    const jwe = await encryptTemplate(randomBytes(700), fleet.publicJwk);
    for (const i of [0, 1, 2, 3, 4]) {
      const len = decodeBase64url(parts(jwe)[i]!)!.length;
      for (const at of [0, Math.floor(len / 2), -1]) for (const bit of [0, 7]) await bothReject(flip(jwe, i, at, bit), 'template_undecryptable');
    }
    // Which step notices, on the fast path:
    expect(await bothReject(flip(jwe, 1, 5), 'template_undecryptable')).toMatch(/A256KW unwrap/);
    for (const i of [2, 3, 4]) expect(await bothReject(flip(jwe, i, 3), 'template_undecryptable')).toMatch(/A256GCM decrypt/);
  });

  it('a flipped bit in an empty-template JWE (no ciphertext at all)', async () => {
    const jwe = await encryptTemplate(new Uint8Array(0), fleet.publicJwk);
    expect(parts(jwe)[3]).toBe('');
    expect((await bothDecrypt(jwe)).length).toBe(0);
    for (const i of [0, 1, 2, 4]) await bothReject(flip(jwe, i, 0), 'template_undecryptable');
  });

  it('a header re-encoded with the same members (the AAD is the part as received, not the parsed JSON)', async () => {
    const jwe = await encryptTemplate(template, fleet.publicJwk);
    const h = headerOf(jwe);
    const reordered = withHeader(jwe, () => Object.fromEntries(Object.entries(h).reverse()));
    expect(parts(reordered)[0]).not.toBe(parts(jwe)[0]);
    expect(await bothReject(reordered, 'template_undecryptable')).toMatch(/A256GCM decrypt/);
    const spaced = parts(jwe);
    spaced[0] = encodeBase64url(JSON.stringify(h, null, 1));
    await bothReject(spaced.join('.'), 'template_undecryptable');
  });

  it('each part removed, emptied, swapped with another JWE, or an extra part', async () => {
    const a = parts(await encryptTemplate(template, fleet.publicJwk));
    const b = parts(await encryptTemplate(template, fleet.publicJwk));
    for (let i = 0; i < 5; i++) {
      await bothReject([...a.slice(0, i), ...a.slice(i + 1)].join('.'), 'template_undecryptable');
      await bothReject(a.map((p, j) => (j === i ? '' : p)).join('.'), 'template_undecryptable');
      await bothReject(a.map((p, j) => (j === i ? b[j]! : p)).join('.'), 'template_undecryptable');
    }
    await bothReject([...a, ''].join('.'), 'template_undecryptable');
    await bothReject([...a, 'AAAA'].join('.'), 'template_undecryptable');
    await bothReject([a[0], a[1], a[2], a[4], a[3]].join('.'), 'template_undecryptable');
  });

  it('garbage', async () => {
    for (const s of ['', '.', '....', 'a.b.c.d.e', 'not a jwe', '.....', 'e30.e30.e30.e30.e30', 'W10....', 'bnVsbA....', 'IiI....']) await bothReject(s, 'template_undecryptable');
  });

  it('the wrong fleet key, an unknown kid, a lookup that throws', async () => {
    const jwe = await encryptTemplate(template, fleet.publicJwk);
    expect(await bothReject(jwe, 'template_undecryptable', other.privateJwk)).toMatch(/A256KW unwrap/);
    expect(await bothReject(jwe, 'template_undecryptable', () => undefined)).toMatch(/fleet key: no fleet key with kid/);
    await bothReject(jwe, 'template_undecryptable', () => {
      throw new Error('key store offline');
    });
  });

  it('an unusable fleet key: public only, another curve, x/y not matching d', async () => {
    const jwe = await encryptTemplate(template, fleet.publicJwk);
    await bothReject(jwe, 'template_undecryptable', fleet.publicJwk);
    await bothReject(jwe, 'template_undecryptable', createPublicKey({ key: fleet.publicJwk, format: 'jwk' }));
    await bothReject(jwe, 'template_undecryptable', generateKeyPairSync('ec', { namedCurve: 'P-384' }).privateKey);
    await bothReject(jwe, 'template_undecryptable', generateKeyPairSync('x25519').privateKey);
    // The fast path also checks, once per key, that a JWK's x and y are the public half of its d.
    const mismatched = { ...fleet.privateJwk, x: other.publicJwk.x, y: other.publicJwk.y };
    expect(() => decryptTemplateSync(jwe, mismatched)).toThrow(/fleet key: the fleet key's x and y/);
  });

  it('epk not on P-256 (invalid-curve points) is refused by the ECDH step', async () => {
    const jwe = await encryptTemplate(template, fleet.publicJwk);
    const epk = headerOf(jwe).epk as { x: string; y: string };
    const y = BigInt(`0x${decodeBase64url(epk.y)!.toString('hex')}`);
    const sqrtB = modPow(P256_B, (P256_P + 1n) / 4n, P256_P); // (0, sqrtB) is on P-256: b is a square mod p
    const offCurve: [string, { x: string; y: string }][] = [
      ['y + 1', { x: epk.x, y: coord((y + 1n) % P256_P) }],
      ['random x, y', { x: encodeBase64url(randomBytes(32)), y: encodeBase64url(randomBytes(32)) }],
      ['(0, 0)', { x: coord(0n), y: coord(0n) }],
      ['(0, 1)', { x: coord(0n), y: coord(1n) }],
      // the valid point (0, √b) with x written as p: coordinates must be reduced
      ['(p, √b)', { x: coord(P256_P), y: coord(sqrtB) }],
      ['(0, √b + p) overflow', { x: coord(0n), y: coord(sqrtB + P256_P < 2n ** 256n ? sqrtB + P256_P : P256_P + 1n) }],
    ];
    for (const [name, point] of offCurve) {
      const bad = withHeader(jwe, (h) => ({ ...h, epk: { kty: 'EC', crv: 'P-256', ...point } }));
      expect(await bothReject(bad, 'template_undecryptable'), name).toMatch(/ECDH: epk is not a valid P-256 point/);
    }
    // Controls: the on-curve (0, √b) passes the ECDH step and fails at the key unwrap (another Z). The negated epk
    // (x, p - y) gives the same Z (the x-coordinate of d·(-E) is that of d·E), so the key unwraps; the header
    // changed, though, and it is the GCM AAD: the tag catches it.
    const valid = withHeader(jwe, (h) => ({ ...h, epk: { kty: 'EC', crv: 'P-256', x: coord(0n), y: coord(sqrtB) } }));
    expect(await bothReject(valid, 'template_undecryptable')).toMatch(/A256KW unwrap/);
    const negated = withHeader(jwe, (h) => ({ ...h, epk: { kty: 'EC', crv: 'P-256', x: epk.x, y: coord(P256_P - y) } }));
    expect(await bothReject(negated, 'template_undecryptable')).toMatch(/A256GCM decrypt/);
  });

  it("node's ECDH refuses points off the curve (the property the fast path relies on)", () => {
    const ecdh = createECDH('prime256v1');
    ecdh.generateKeys();
    const peer = createECDH('prime256v1');
    peer.generateKeys();
    const good = peer.getPublicKey();
    expect(ecdh.computeSecret(good).length).toBe(32);
    let refused = 0;
    for (let i = 0; i < 50; i++) {
      const bad = Buffer.from(good);
      bad[1 + randomInt(64)]! ^= 1 << randomInt(8);
      try {
        ecdh.computeSecret(bad);
      } catch (e) {
        expect((e as { code?: string }).code).toBe('ERR_CRYPTO_ECDH_INVALID_PUBLIC_KEY');
        refused++;
      }
    }
    expect(refused).toBe(50);
    expect(() => ecdh.computeSecret(Buffer.concat([Buffer.of(4), Buffer.alloc(64)]))).toThrow();
  });

  it('epk of another curve or type, private, or with malformed coordinates is refused by the header checks', async () => {
    const jwe = await encryptTemplate(template, fleet.publicJwk);
    const epk = headerOf(jwe).epk as Record<string, unknown>;
    const p384 = generateKeyPairSync('ec', { namedCurve: 'P-384' }).publicKey.export({ format: 'jwk' });
    const x25519 = generateKeyPairSync('x25519').publicKey.export({ format: 'jwk' });
    const eph256 = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ format: 'jwk' });
    const bads: unknown[] = [
      undefined,
      null,
      'epk',
      [epk],
      p384,
      { ...p384, crv: 'P-256' },
      { ...epk, crv: 'P-384' },
      { ...epk, crv: 'secp256k1' },
      { ...epk, kty: 'OKP' },
      x25519,
      { ...x25519, crv: 'P-256' },
      { kty: 'EC', crv: 'P-256', x: epk.x },
      { ...epk, x: (epk.x as string).slice(1) },
      { ...epk, y: `${epk.y as string}AA` },
      { ...epk, x: 12345 },
      { ...epk, x: `${(epk.x as string).slice(0, 42)}+` },
      eph256, // carries d
      { ...epk, d: 'AAAA' },
    ];
    for (const bad of bads) {
      const msg = await bothReject(withHeader(jwe, (h) => ({ ...h, epk: bad })), 'template_undecryptable');
      expect(msg, JSON.stringify(bad)).toMatch(/header: epk/);
    }
  });

  it('other alg or enc, in the header or genuinely encrypted so', async () => {
    const jwe = await encryptTemplate(template, fleet.publicJwk);
    for (const alg of ['ECDH-ES', 'ECDH-ES+A128KW', 'ECDH-ES+A192KW', 'A256KW', 'RSA-OAEP-256', 'dir', 'none', 'ecdh-es+a256kw', 'ECDH-ES+A256KW ', undefined, null, ['ECDH-ES+A256KW']]) {
      expect(await bothReject(withHeader(jwe, (h) => ({ ...h, alg })), 'template_undecryptable')).toMatch(/header: alg/);
    }
    for (const enc of ['A128GCM', 'A192GCM', 'A256CBC-HS512', 'A128CBC-HS256', 'a256gcm', undefined, 256]) {
      expect(await bothReject(withHeader(jwe, (h) => ({ ...h, enc })), 'template_undecryptable')).toMatch(/header: enc/);
    }
    const { alg: _alg, ...anyAlg } = fleet.publicJwk;
    for (const [alg, enc] of [['ECDH-ES', 'A256GCM'], ['ECDH-ES+A128KW', 'A256GCM'], ['ECDH-ES+A256KW', 'A128GCM'], ['ECDH-ES+A256KW', 'A256CBC-HS512']] as const) {
      const genuine = await new CompactEncrypt(template).setProtectedHeader({ alg, enc }).encrypt(createPublicKey({ key: anyAlg, format: 'jwk' }));
      await bothReject(genuine, 'template_undecryptable');
    }
  });

  it('compression (zip), critical extensions, a non-string kid, bad apu/apv: refused even when otherwise valid', async () => {
    // zip: DEF with a really deflated template; jose alone would inflate it (so the jose path sets maxDecompressedLength: 0).
    const zipped = craft(deflateRawSync(template), fleet.publicJwk, { header: (h) => ({ ...h, zip: 'DEF' }) });
    const { plaintext } = await compactDecrypt(zipped, createPrivateKey({ key: fleet.privateJwk, format: 'jwk' }));
    expect(Buffer.from(plaintext).equals(template)).toBe(true);
    expect(await bothReject(zipped, 'template_undecryptable')).toMatch(/header: compression/);
    await bothReject(craft(template, fleet.publicJwk, { header: (h) => ({ ...h, zip: 'GZIP' }) }), 'template_undecryptable');
    await bothReject(withHeader(await encryptTemplate(template, fleet.publicJwk), (h) => ({ ...h, zip: 'DEF' })), 'template_undecryptable');
    for (const crit of [['exp'], [], 'exp', ['b64']]) {
      expect(await bothReject(craft(template, fleet.publicJwk, { header: (h) => ({ ...h, crit, exp: 1, b64: false }) }), 'template_undecryptable')).toMatch(/header: no extension/);
    }
    for (const kid of [42, null, { k: 1 }, ['a']]) {
      expect(await bothReject(craft(template, fleet.publicJwk, { header: (h) => ({ ...h, kid }) }), 'template_undecryptable')).toMatch(/header: kid/);
    }
    const same = encodeBase64url(randomBytes(8));
    expect(await bothReject(craft(template, fleet.publicJwk, { header: (h) => ({ ...h, apu: same, apv: same }) }), 'template_undecryptable')).toMatch(/apu and apv must differ/);
    for (const apu of [5, 'a+b/', null, ['AAAA']]) {
      expect(await bothReject(craft(template, fleet.publicJwk, { header: (h) => ({ ...h, apu }) }), 'template_undecryptable')).toMatch(/header: apu/);
    }
  });

  it('unknown header members are ignored (RFC 7516 §4), as jose does', async () => {
    const jwe = craft(template, fleet.publicJwk, { header: (h) => ({ ...h, typ: 'biokiosk-template', cty: 'x', foo: [1, 2], epk: { ...(h.epk as object), kid: 'e', use: 'enc' } }) });
    expect((await bothDecrypt(jwe)).equals(template)).toBe(true);
  });

  it('header that is not a JSON object, or not UTF-8', async () => {
    const jwe = await encryptTemplate(template, fleet.publicJwk);
    for (const raw of [Buffer.from('[]'), Buffer.from('null'), Buffer.from('"ECDH-ES+A256KW"'), Buffer.from('{'), Buffer.from('{"alg":"ECDH-ES+A256KW"'), Buffer.from([0xff, 0xfe, 0x7b, 0x7d])]) {
      const p = parts(jwe);
      p[0] = encodeBase64url(raw);
      expect(await bothReject(p.join('.'), 'template_undecryptable')).toMatch(/header: /);
    }
  });

  it('IV, tag and encrypted key of the wrong length, even when the JWE is otherwise genuine', async () => {
    expect(await bothReject(craft(template, fleet.publicJwk, { ivBytes: 16 }), 'template_undecryptable')).toMatch(/IV is 16 bytes/);
    expect(await bothReject(craft(template, fleet.publicJwk, { ivBytes: 8 }), 'template_undecryptable')).toMatch(/IV is 8 bytes/);
    expect(await bothReject(craft(template, fleet.publicJwk, { tagBytes: 12 }), 'template_undecryptable')).toMatch(/authentication tag is 12 bytes/);
    expect(await bothReject(craft(template, fleet.publicJwk, { tagBytes: 4 }), 'template_undecryptable')).toMatch(/authentication tag is 4 bytes/);
    expect(await bothReject(craft(template, fleet.publicJwk, { cekBytes: 16 }), 'template_undecryptable')).toMatch(/encrypted key is 24 bytes/);
    expect(await bothReject(craft(template, fleet.publicJwk, { cekBytes: 64 }), 'template_undecryptable')).toMatch(/encrypted key is 72 bytes/);
  });

  it('oversized: the JWE before any work, the plaintext after decryption', async () => {
    const jwe = await encryptTemplate(template, fleet.publicJwk);
    await bothReject(jwe, 'oversized', fleet.privateJwk, { maxBytes: 100 });
    await bothReject(`${jwe}${'A'.repeat(MAX_SEALED_JWE)}`, 'oversized');
    await bothReject('x'.repeat(MAX_SEALED_JWE + 1), 'oversized');
    // A genuine JWE under the character bound whose plaintext is over the template bound.
    const big = craft(randomBytes(MAX_TEMPLATE_BYTES + 1), fleet.publicJwk);
    expect(big.length).toBeLessThanOrEqual(MAX_SEALED_JWE);
    await bothReject(big, 'oversized');
  });

  it('the fast path takes strict base64url only (jose is laxer about padding and stray bits)', async () => {
    const jwe = await encryptTemplate(randomBytes(10), fleet.publicJwk);
    const p = parts(jwe);
    expect(p[3]!.length % 4).toBe(2); // 10 bytes: the last character has 4 unused bits
    const INDEX = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
    const last = p[3]!.at(-1)!;
    const strayBits = p.map((s, i) => (i === 3 ? s.slice(0, -1) + INDEX[INDEX.indexOf(last) | 1]! : s)).join('.');
    const padded = p.map((s, i) => (i === 3 ? `${s}==` : s)).join('.');
    for (const s of [strayBits, padded]) expect(() => decryptTemplateSync(s, fleet.privateJwk)).toThrow(/JWE: the ciphertext is not strict base64url/);
    expect(() => parseTemplateJwe(jwe)).not.toThrow();
  });
});

describe("template JWE: the kiosk's synchronous encryption", () => {
  it('makes JWEs jose and the fast path both decrypt, with a fresh ephemeral key each time, refusing a point off the curve', async () => {
    const fleet = generateFleetKeyPair();
    const kid = fleet.publicJwk.kid as string;
    const seen = new Set<string>();
    for (const n of [0, 1, 16, 511, 4096, 30_000]) {
      const plain = randomBytes(n);
      const jwe = encryptTemplateJweSync(plain, fleet.publicJwk as { x: string; y: string }, kid);
      const p = parseTemplateJwe(jwe);
      expect(p.kid).toBe(kid);
      seen.add(p.epk.toString('hex'));
      expect(Buffer.from((await compactDecrypt(jwe, createPrivateKey({ key: fleet.privateJwk, format: 'jwk' }))).plaintext).equals(plain)).toBe(true);
      expect(Buffer.from(await decryptTemplate(jwe, fleet.privateJwk)).equals(plain)).toBe(true);
    }
    expect(seen.size).toBe(6);
    const off = { x: encodeBase64url(new Uint8Array(32).fill(1)), y: encodeBase64url(new Uint8Array(32).fill(2)) };
    expect(() => encryptTemplateJweSync(new Uint8Array(4), off, 'k')).toThrow();
  });
});
