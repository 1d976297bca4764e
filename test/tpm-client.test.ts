// The TPM client against a real swtpm (fresh state for this file): capabilities, keys and signatures (checked
// with node:crypto and @noble/curves), typed errors, transient-handle hygiene, recovery from a TPM reset and
// from a restarted emulator, the EK certificate, and the real responses of this run fuzzed (truncated, flipped).
import { X509Certificate, createHash, randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  HT,
  RC,
  RH,
  SwtpmControl,
  TpmClient,
  TpmError,
  TpmFailure,
  TpmFormatError,
  commands,
  counterNvPublic,
  eccPublicJwk,
  eccSigningKeyTemplate,
  eccSrkTemplate,
  objectName,
  parseTpmUrl,
} from '../drivers/tpm/index.ts';
import { Swtpm, verifyBoth } from './helpers/swtpm.ts';

let tpm: Swtpm;
let client: TpmClient;
const recorded: { spec: commands.CommandSpec<unknown>; response: Uint8Array }[] = [];
const PERSISTENT = 0x81010020;

beforeAll(async () => {
  tpm = await Swtpm.start();
  client = TpmClient.open(tpm.url, { timeoutMs: 10_000, onExchange: (spec, response) => recorded.push({ spec, response }) });
});

afterAll(async () => {
  await client?.close();
  await tpm?.stop();
});

/** SRK -> signing key, loaded; the caller flushes. */
async function loadSigningKey(): Promise<{ srk: number; key: number; jwk: { x: string; y: string } }> {
  const srk = await client.createPrimary(RH.OWNER, eccSrkTemplate());
  const k = await client.create(srk.handle, eccSigningKeyTemplate());
  const l = await client.load(srk.handle, k.private, k.public);
  return { srk: srk.handle, key: l.handle, jwk: eccPublicJwk(k.public) };
}

describe('TPM client on swtpm', () => {
  it('reports manufacturer, firmware, algorithms, handles and random bytes', async () => {
    await client.selfTest(true);
    const info = await client.info();
    expect(info.manufacturer).toBe('IBM');
    expect(info.family).toBe('2.0');
    expect(info.firmwareVersion).toMatch(/^\d+\.\d+\.\d+\.\d+$/);
    const algs = (await client.algorithms()).map((a) => a.name);
    expect(algs).toEqual(expect.arrayContaining(['ecc', 'ecdsa', 'sha256', 'rsa', 'aes']));
    const free = await client.freeHandles();
    expect(free.transientAvail).toBeGreaterThan(0);
    expect(await client.handles(HT.TRANSIENT)).toEqual([]);
    expect((await client.handles(HT.NV_INDEX)).length).toBeGreaterThan(0);
    const r = await client.getRandom(32);
    expect(r.length).toBe(32);
  });

  it('creates, loads and signs with an ECDSA P-256 key; both verifiers accept; names match', async () => {
    const { srk, key, jwk } = await loadSigningKey();
    try {
      const pub = await client.readPublic(key);
      expect(Buffer.from(pub.name)).toEqual(Buffer.from(objectName(pub.public)));
      expect(eccPublicJwk(pub.public)).toMatchObject(jwk);
      for (let i = 0; i < 20; i++) {
        const msg = randomBytes(50);
        const digest = createHash('sha256').update(msg).digest();
        const sig = await client.signP256(key, digest);
        expect(sig.length).toBe(64);
        expect(verifyBoth(jwk, msg, digest, sig)).toEqual({ node: true, noble: true });
      }
      // A wrong digest does not verify (the checks are not vacuous).
      const sig = await client.signP256(key, new Uint8Array(32));
      expect(verifyBoth(jwk, Buffer.from('x'), createHash('sha256').update('x').digest(), sig)).toEqual({ node: false, noble: false });
    } finally {
      await client.flushQuietly(key);
      await client.flushQuietly(srk);
    }
    expect(await client.handles(HT.TRANSIENT)).toEqual([]);
  });

  it('decodes TPM errors into typed errors', async () => {
    const srk = await client.createPrimary(RH.OWNER, eccSrkTemplate());
    const k = await client.withTransient(srk.handle, (h) => client.create(h, eccSigningKeyTemplate()));
    // A parent handle with nothing behind it: TPM_RC_HANDLE, about handle 1.
    const err = await client.load(0x81fffff0, k.private, k.public).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TpmError);
    expect((err as TpmError).rcName).toBe('TPM_RC_HANDLE');
    expect((err as TpmError).baseCode).toBe(RC.HANDLE);
    expect((err as TpmError).info.where).toBe('handle 1');
    expect((err as TpmError).message).toMatch(/^TPM2_Load failed: 0x18b TPM_RC_HANDLE: /);
    await expect(client.readPublic(0x81fffff0)).rejects.toMatchObject({ rcName: 'TPM_RC_HANDLE' });
    // An out-of-range transient handle is a bad value for handle 1; a flushed one is a reference warning.
    await expect(client.load(0x80ffffff, k.private, k.public)).rejects.toMatchObject({ rcName: 'TPM_RC_VALUE', info: { where: 'handle 1' } });
    const stale = await client.load(0x80000002, k.private, k.public).catch((e: unknown) => e);
    expect(stale).toBeInstanceOf(TpmError);
    expect((stale as TpmError).rcName).toMatch(/^TPM_RC_(REFERENCE_H0|HANDLE)$/);
    // A digest of the wrong size for the scheme.
    const { srk: s2, key } = await loadSigningKey();
    try {
      await expect(client.sign(key, new Uint8Array(70))).rejects.toBeInstanceOf(TpmError);
    } finally {
      await client.flushQuietly(key);
      await client.flushQuietly(s2);
    }
  });

  it('runs out of object slots with TPM_RC_OBJECT_MEMORY, and never leaks a transient handle', async () => {
    const srk = await client.createPrimary(RH.OWNER, eccSrkTemplate());
    const k = await client.withTransient(srk.handle, (h) => client.create(h, eccSigningKeyTemplate()));
    const held: number[] = [];
    let full: unknown;
    try {
      for (let i = 0; i < 10 && !full; i++) {
        try {
          held.push((await client.createPrimary(RH.OWNER, eccSrkTemplate())).handle);
        } catch (e) {
          full = e;
        }
      }
    } finally {
      for (const h of held) await client.flushContext(h);
    }
    expect(full).toBeInstanceOf(TpmError);
    expect((full as TpmError).code).toBe(0x902);
    expect((full as TpmError).rcName).toBe('TPM_RC_OBJECT_MEMORY');
    expect((full as TpmError).description).toBe('out of object slots; flush transient handles');

    // Many load/sign cycles, a third of them failing inside the callback: every handle is flushed.
    let failures = 0;
    for (let i = 0; i < 30; i++) {
      try {
        await client.withTransient(
          client.createPrimary(RH.OWNER, eccSrkTemplate()).then((p) => p.handle),
          async (parent) =>
            client.withTransient(client.load(parent, k.private, k.public).then((l) => l.handle), async (key) => {
              await client.signP256(key, randomBytes(32));
              if (i % 3 === 0) throw new Error('caller failure');
            }),
        );
      } catch (e) {
        if ((e as Error).message !== 'caller failure') throw e;
        failures++;
      }
    }
    expect(failures).toBe(10);
    expect(await client.handles(HT.TRANSIENT)).toEqual([]);
    expect((await client.freeHandles()).loaded).toBe(0);
  });

  it('recovers from a TPM reset (swtpm CMD_INIT) and from a restarted emulator', async () => {
    const { srk, key, jwk } = await loadSigningKey();
    await client.evictControl(key, PERSISTENT);
    await client.flushContext(key);
    await client.flushContext(srk);
    const ctrl = SwtpmControl.forTarget(parseTpmUrl(tpm.url));
    expect((await ctrl.getCapability()) & 0x2n).toBe(0x2n); // PTM_CAP_INIT

    await ctrl.init();
    const before = client.stats.startupsSent;
    const digest = createHash('sha256').update('after reset').digest();
    const sig = await client.signP256(PERSISTENT, digest);
    expect(client.stats.startupsSent).toBe(before + 1);
    expect(verifyBoth(jwk, Buffer.from('after reset'), digest, sig)).toEqual({ node: true, noble: true });

    await tpm.restart();
    const d2 = createHash('sha256').update('after restart').digest();
    expect(verifyBoth(jwk, Buffer.from('after restart'), d2, await client.signP256(PERSISTENT, d2))).toEqual({ node: true, noble: true });

    await client.evictControl(PERSISTENT, PERSISTENT);
    await expect(client.readPublic(PERSISTENT)).rejects.toMatchObject({ rcName: 'TPM_RC_HANDLE' });
  });

  it('reads the EK certificate from NV and parses it with X509Certificate', async () => {
    const rsa = await client.readEkCertificate('rsa');
    expect(rsa?.index).toBe(0x01c00002);
    const cert = new X509Certificate(rsa!.der);
    expect(cert.publicKey.asymmetricKeyType).toBe('rsa');
    expect(cert.issuer).toMatch(/swtpm/i);
    const any = await client.readEkCertificate('any');
    expect(any).not.toBeNull();
    new X509Certificate(any!.der);
    // The NV counter path: define, increment, read, undefine.
    const idx = 0x01000b99;
    await client.nvDefineSpace(counterNvPublic(idx));
    await expect(client.nvRead(idx, 8)).rejects.toMatchObject({ rcName: 'TPM_RC_NV_UNINITIALIZED' });
    await client.nvIncrement(idx);
    const a = Buffer.from(await client.nvRead(idx, 8)).readBigUInt64BE(0);
    await client.nvIncrement(idx);
    expect(Buffer.from(await client.nvRead(idx, 8)).readBigUInt64BE(0)).toBe(a + 1n);
    await client.nvUndefineSpace(idx);
  });

  it('fuzz: every real response of this run, truncated or with flipped bytes, parses or throws a typed error', () => {
    const byName = new Map<string, { spec: commands.CommandSpec<unknown>; response: Uint8Array }>();
    for (const r of recorded) if (r.response.length > 10) byName.set(r.spec.name, r);
    expect([...byName.keys()]).toEqual(
      expect.arrayContaining(['TPM2_GetCapability', 'TPM2_GetRandom', 'TPM2_CreatePrimary', 'TPM2_Create', 'TPM2_Load', 'TPM2_ReadPublic', 'TPM2_Sign', 'TPM2_NV_Read', 'TPM2_NV_ReadPublic']),
    );
    for (const { spec, response } of byName.values()) {
      expect(() => commands.decodeResponse(spec, response)).not.toThrow();
      for (let cut = 0; cut < response.length; cut++) {
        expect(() => commands.decodeResponse(spec, response.subarray(0, cut)), `${spec.name} cut at ${cut}`).toThrow(TpmFormatError);
      }
      for (let i = 0; i < 300; i++) {
        const b = Buffer.from(response);
        for (let j = 0; j < 1 + (i % 4); j++) b[Math.floor(Math.random() * b.length)] = Math.floor(Math.random() * 256);
        try {
          commands.decodeResponse(spec, b);
        } catch (e) {
          if (!(e instanceof TpmFailure)) throw new Error(`${spec.name}: flipped bytes gave ${(e as Error).name}: ${(e as Error).message}`);
        }
      }
    }
  });
});
