import { createHash, createPublicKey, verify } from 'node:crypto';
import { chmodSync, mkdtempSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { inspect } from 'node:util';
import { calculateJwkThumbprint, compactVerify } from 'jose';
import { afterAll, describe, expect, it } from 'vitest';
import { signDigestP256 } from '../device/keystore/ecdsa-p256.ts';
import { SoftwareKeyStore } from '../device/keystore/software.ts';
import { ATTESTATION_TYP, signCompactJws, verifyCompactJws } from '../protocol/jws.ts';

const dir = mkdtempSync(join(tmpdir(), 'biokiosk-keystore-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('ECDSA P-256 over a digest', () => {
  // RFC 6979 A.2.5: P-256, SHA-256, messages "sample" and "test".
  const d = Buffer.from('C9AFA9D845BA75166B5C215767B1D6934E50C3DB36E89B127B8A622B120F6721', 'hex');
  it('matches the RFC 6979 test vectors (s normalised to the low half, as @noble/curves does)', () => {
    const N = 0xffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551n;
    const lowS = (hex: string) => {
      const s = BigInt('0x' + hex);
      return (s > N / 2n ? N - s : s).toString(16).toUpperCase().padStart(64, '0');
    };
    const sig = (m: string) => Buffer.from(signDigestP256(d, createHash('sha256').update(m).digest())).toString('hex').toUpperCase();
    expect(sig('sample')).toBe('EFD48B2AACB6A8FD1140DD9CD45E81D69D2C877B56AAF991C34D0EA84EAF3716' + lowS('F7CB1C942D657C41D436C7A1B6E29F65F3E900DBB9AFF4064DC4AB2F843ACDA8'));
    expect(sig('test')).toBe('F1ABB023518351CD71D881567B1EA663ED3EFCF6C5132B354F28D3B0B7D38367' + lowS('019F4113742A2B14BD25926B49C649155F267E60D3814B4C0CC84250E46F0083'));
  });
  it('refuses inputs of the wrong size', () => {
    expect(() => signDigestP256(d, new Uint8Array(31))).toThrow(/32-byte/);
    expect(() => signDigestP256(new Uint8Array(32), new Uint8Array(32))).toThrow(/out of range|invalid private key/);
  });
});

describe('SoftwareKeyStore', () => {
  it('creates the key file with mode 0600, labelled development-only, and reopens the same key', async () => {
    const path = join(dir, 'sub', 'device-key.json');
    const ks = await SoftwareKeyStore.open(path);
    expect(ks.created).toBe(true);
    expect(statSync(path).mode & 0o777).toBe(0o600);
    const doc = JSON.parse(readFileSync(path, 'utf8'));
    expect(doc.kind).toBe('biokiosk-software-keystore/1');
    expect(doc.warning).toMatch(/DEVELOPMENT ONLY/);
    expect(doc.jwk).toMatchObject({ kty: 'EC', crv: 'P-256', use: 'sig', alg: 'ES256', biokiosk: 'development-only', kid: ks.kid });
    expect(SoftwareKeyStore.warning).toMatch(/development/);
    expect(ks.developmentOnly).toBe(true);

    const again = await SoftwareKeyStore.open(path);
    expect(again.created).toBe(false);
    expect(again.kid).toBe(ks.kid);
    expect(again.publicJwk).toEqual(ks.publicJwk);
  });

  it('concurrent opens of a new path agree on one key', async () => {
    const path = join(dir, 'race.json');
    const stores = await Promise.all(Array.from({ length: 8 }, () => SoftwareKeyStore.open(path)));
    expect(new Set(stores.map((s) => s.kid)).size).toBe(1);
    expect(stores.filter((s) => s.created).length).toBe(1);
  });

  it('refuses a key file that group or others can access, saying how to fix it', async () => {
    const path = join(dir, 'loose.json');
    await SoftwareKeyStore.open(path);
    chmodSync(path, 0o644);
    await expect(SoftwareKeyStore.open(path)).rejects.toMatchObject({ code: 'KeyFileInsecure', kind: 'input', message: expect.stringMatching(/mode is 0644.*chmod 600/) });
    chmodSync(path, 0o640);
    await expect(SoftwareKeyStore.open(path)).rejects.toMatchObject({ code: 'KeyFileInsecure' });
    chmodSync(path, 0o600);
    await expect(SoftwareKeyStore.open(path)).resolves.toBeInstanceOf(SoftwareKeyStore);
  });

  it('refuses symlinks, foreign files and tampered keys', async () => {
    const target = join(dir, 'target.json');
    await SoftwareKeyStore.open(target);
    const link = join(dir, 'link.json');
    symlinkSync(target, link);
    await expect(SoftwareKeyStore.open(link)).rejects.toMatchObject({ code: 'KeyFileInsecure', message: expect.stringMatching(/symbolic link/) });

    const notOurs = join(dir, 'other.json');
    writeFileSync(notOurs, '{"hello":1}', { mode: 0o600 });
    await expect(SoftwareKeyStore.open(notOurs)).rejects.toMatchObject({ code: 'KeyFileInvalid' });

    const mixed = join(dir, 'mixed.json');
    await SoftwareKeyStore.open(mixed);
    const doc = JSON.parse(readFileSync(target, 'utf8'));
    const mixedDoc = JSON.parse(readFileSync(mixed, 'utf8'));
    mixedDoc.jwk.x = doc.jwk.x; // someone else's public key next to our private key
    mixedDoc.jwk.y = doc.jwk.y;
    writeFileSync(mixed, JSON.stringify(mixedDoc));
    await expect(SoftwareKeyStore.open(mixed)).rejects.toMatchObject({ code: 'KeyFileInvalid' });

    await expect(SoftwareKeyStore.open(join(dir, 'absent.json'), { create: false })).rejects.toMatchObject({ code: 'KeyFileUnreadable' });
  });

  it('its kid is the RFC 7638 thumbprint, and its signatures verify with standard ES256 (jose compactVerify)', async () => {
    const ks = await SoftwareKeyStore.open(join(dir, 'interop.json'));
    expect(ks.kid).toBe(await calculateJwkThumbprint(ks.publicJwk));
    const jws = await signCompactJws({ kid: ks.kid, typ: ATTESTATION_TYP }, { hello: 'tpm-shaped signer' }, ks);
    const { payload } = await compactVerify(jws, ks.publicJwk);
    expect(JSON.parse(new TextDecoder().decode(payload))).toEqual({ hello: 'tpm-shaped signer' });
    expect((await verifyCompactJws(jws, () => ks.publicJwk, { maxBytes: 1024, typ: ATTESTATION_TYP })).payload).toEqual({ hello: 'tpm-shaped signer' });
    // Many signatures, to exercise the nonce and blinding paths.
    for (let i = 0; i < 50; i++) await compactVerify(await signCompactJws({ kid: ks.kid, typ: ATTESTATION_TYP }, { i }, ks), ks.publicJwk);
  });

  it('signs whole messages through node:crypto and digests through the Signer interface, both standard ES256', async () => {
    const ks = SoftwareKeyStore.ephemeral();
    const msg = Buffer.from('base64url(header).base64url(payload)');
    const key = createPublicKey({ key: ks.publicJwk, format: 'jwk' });
    const whole = await ks.signMessage(msg);
    const digest = await ks.sign(createHash('sha256').update(msg).digest());
    for (const sig of [whole, digest]) {
      expect(sig.byteLength).toBe(64);
      expect(verify('sha256', msg, { key, dsaEncoding: 'ieee-p1363' }, sig)).toBe(true);
    }
  });

  it('never shows its private key in JSON or inspect output', () => {
    const ks = SoftwareKeyStore.ephemeral();
    expect(JSON.stringify(ks)).not.toMatch(/"d"/);
    expect(inspect(ks, { depth: 5 })).not.toMatch(/\bd:/);
    expect(ks.path).toBeNull();
  });
});
