// The TPM key store and the TPM seq counter on a real swtpm (fresh state for this file; Unix sockets for one
// of the suites, so both swtpm transports are exercised).
import { createHash, randomBytes, verify as nodeVerify, createPublicKey } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ATTESTATION_TYP, signCompactJws, verifyCompactJws } from '../protocol/jws.ts';
import { jwkThumbprint } from '../protocol/signer.ts';
import { DEFAULT_KEY_HANDLE, TpmKeyStore } from '../device/keystore/tpm.ts';
import { TpmSeqCounter } from '../device/tpm-seq-counter.ts';
import { HT, RH, ST, TPM_GENERATED_VALUE, TPMA_OBJECT, TpmClient, eccSrkTemplate, objectName } from '../drivers/tpm/index.ts';
import { Swtpm, verifyBoth } from './helpers/swtpm.ts';

let tpm: Swtpm;

beforeAll(async () => {
  tpm = await Swtpm.start({ unix: true });
});

afterAll(async () => {
  await tpm?.stop();
});

describe('TPM key store (swtpm over Unix sockets)', () => {
  it('creates the attestation key once, persists it, and reuses it on reopen', async () => {
    const a = await TpmKeyStore.open({ tpm: tpm.url });
    expect(a.created).toBe(true);
    expect(a.handle).toBe(DEFAULT_KEY_HANDLE);
    expect(a.kid).toBe(jwkThumbprint(a.publicJwk));
    const attrs = a.publicArea.attributes;
    for (const bit of [TPMA_OBJECT.fixedTPM, TPMA_OBJECT.fixedParent, TPMA_OBJECT.sensitiveDataOrigin, TPMA_OBJECT.userWithAuth, TPMA_OBJECT.sign]) expect(attrs & bit).toBe(bit);
    expect(attrs & (TPMA_OBJECT.decrypt | TPMA_OBJECT.restricted)).toBe(0);
    await a.close();
    const b = await TpmKeyStore.open({ tpm: tpm.url });
    expect(b.created).toBe(false);
    expect(b.kid).toBe(a.kid);
    expect(b.publicJwk).toEqual(a.publicJwk);
    // No transient handles left behind by creation.
    expect(await b.client.handles(HT.TRANSIENT)).toEqual([]);
    await b.close();
  });

  it('signs digests (node:crypto and @noble/curves verify) and signs a JWS the verifier accepts', async () => {
    const ks = await TpmKeyStore.open({ tpm: tpm.url });
    try {
      for (let i = 0; i < 10; i++) {
        const msg = randomBytes(40);
        const digest = createHash('sha256').update(msg).digest();
        expect(verifyBoth(ks.publicJwk, msg, digest, await ks.sign(digest))).toEqual({ node: true, noble: true });
      }
      const jws = await signCompactJws({ kid: ks.kid, typ: ATTESTATION_TYP }, { hello: 'tpm' }, ks);
      const v = await verifyCompactJws(jws, (kid) => (kid === ks.kid ? ks.publicJwk : undefined), { typ: ATTESTATION_TYP, maxBytes: 65536 });
      expect(v.payload).toEqual({ hello: 'tpm' });
      await expect(ks.sign(new Uint8Array(31))).rejects.toThrow(/32-byte/);
    } finally {
      await ks.close();
    }
  });

  it('produces Certify evidence: TPMS_ATTEST for the key, signed by a restricted endorsement key', async () => {
    const ks = await TpmKeyStore.open({ tpm: tpm.url });
    try {
      const nonce = randomBytes(32);
      const ev = await ks.certify(nonce);
      expect(ev.parsed.magic).toBe(TPM_GENERATED_VALUE);
      expect(ev.parsed.type).toBe(ST.ATTEST_CERTIFY);
      expect(Buffer.from(ev.parsed.extraData)).toEqual(nonce);
      // The certified name is the key's, and the key's public area hashes to it.
      expect(Buffer.from(ev.parsed.certify!.name)).toEqual(Buffer.from(ev.keyName));
      expect(Buffer.from(objectName(ks.publicArea))).toEqual(Buffer.from(ev.keyName));
      const key = createPublicKey({ key: { ...ev.signerPublicJwk }, format: 'jwk' });
      expect(nodeVerify('sha256', ev.attest, { key, dsaEncoding: 'ieee-p1363' }, ev.signature)).toBe(true);
      const digest = createHash('sha256').update(ev.attest).digest();
      expect(verifyBoth(ev.signerPublicJwk, ev.attest, digest, ev.signature)).toEqual({ node: true, noble: true });
      // The certifying key is deterministic (same endorsement seed, same template) and restricted.
      const again = await ks.certify();
      expect(again.signerPublicJwk).toEqual(ev.signerPublicJwk);
      expect(await ks.client.handles(HT.TRANSIENT)).toEqual([]);
      // The EK certificate is there for binding the certifying key at provisioning.
      expect((await ks.ekCertificate('rsa'))?.index).toBe(0x01c00002);
    } finally {
      await ks.close();
    }
  });

  it('refuses a persistent object that is not an attestation key, and create:false when absent', async () => {
    const c = TpmClient.open(tpm.url);
    try {
      const srk = await c.createPrimary(RH.OWNER, eccSrkTemplate());
      await c.evictControl(srk.handle, 0x81010077);
      await c.flushContext(srk.handle);
      await expect(TpmKeyStore.open({ tpm: c, handle: 0x81010077 })).rejects.toMatchObject({ code: 'TpmKeyMismatch' });
      await expect(TpmKeyStore.open({ tpm: c, handle: 0x81010078, create: false })).rejects.toMatchObject({ code: 'TpmKeyMissing' });
      await c.evictControl(0x81010077, 0x81010077);
    } finally {
      await c.close();
    }
  });

  it('the TPM seq counter only grows, across reopen and an emulator restart', async () => {
    const a = await TpmSeqCounter.open(tpm.url);
    expect(await a.current()).toBeNull();
    const seen: number[] = [];
    for (let i = 0; i < 5; i++) seen.push(await a.next());
    await a.close();
    const b = await TpmSeqCounter.open(tpm.url);
    expect(await b.current()).toBe(seen.at(-1));
    seen.push(await b.next());
    await b.close();
    await tpm.restart();
    const c = await TpmSeqCounter.open(tpm.url);
    seen.push(await c.next(), await c.next());
    await c.close();
    for (let i = 1; i < seen.length; i++) expect(seen[i]!).toBeGreaterThan(seen[i - 1]!);
    expect(seen.length).toBe(8);
  });
});
