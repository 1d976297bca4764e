// The TPM driver without a TPM: marshalling, response-code decoding, the setting parser, response framing
// against fake servers (bounds, timeouts, a dropped connection), and the structure parsers fed random bytes.
import { createServer, type Server, type Socket } from 'node:net';
import { randomBytes } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import {
  ALG,
  Reader,
  TpmClient,
  TpmConfigError,
  TpmError,
  TpmFailure,
  TpmFormatError,
  TpmTransportError,
  Writer,
  commands,
  describeRc,
  eccSigningKeyTemplate,
  objectName,
  parseAttest,
  parseTpmUrl,
  publicBytes,
  readPublic,
  readSignature,
} from '../drivers/tpm/index.ts';

describe('marshalling', () => {
  it('writes and reads the TPM big-endian types and TPM2B buffers', () => {
    const w = new Writer().u8(1).u16(0x0203).u32(0x04050607).u64(0x08090a0b0c0d0e0fn).tpm2b(new Uint8Array([9, 9])).sized((i) => i.u16(7));
    const b = w.finish();
    expect(Buffer.from(b).toString('hex')).toBe('010203040506070809' + '0a0b0c0d0e0f' + '00020909' + '00020007');
    const r = new Reader(b, 'test');
    expect([r.u8('a'), r.u16('b'), r.u32('c'), r.u64('d')]).toEqual([1, 0x0203, 0x04050607, 0x08090a0b0c0d0e0fn]);
    expect([...r.tpm2b('e')]).toEqual([9, 9]);
    expect(r.sized('f', (i) => i.u16('g'))).toBe(7);
    r.end();
    expect(() => new Reader(new Uint8Array([0, 5, 1]), 'X').tpm2b('buf')).toThrow(/X: truncated at buf/);
    expect(() => new Reader(new Uint8Array([0, 5, 1, 2, 3, 4, 5]), 'X').tpm2b('buf', 4)).toThrow(/over its bound of 4/);
  });

  it('round-trips a TPMT_PUBLIC and computes its name', () => {
    const t = { ...eccSigningKeyTemplate(), x: new Uint8Array(32).fill(1), y: new Uint8Array(32).fill(2) };
    const bytes = publicBytes(t);
    const r = new Reader(bytes, 'pub');
    const back = readPublic(r);
    r.end();
    expect(back).toEqual(t);
    const name = objectName(t);
    expect(name.length).toBe(34);
    expect(name[1]).toBe(ALG.SHA256);
  });
});

describe('response codes', () => {
  it('decodes format-zero, format-one and warning codes into typed errors', () => {
    const cases: [number, string, string | undefined][] = [
      [0x902, 'TPM_RC_OBJECT_MEMORY', undefined],
      [0x100, 'TPM_RC_INITIALIZE', undefined],
      [0x18b, 'TPM_RC_HANDLE', 'handle 1'],
      [0x28b, 'TPM_RC_HANDLE', 'handle 2'],
      [0x1c4, 'TPM_RC_VALUE', 'parameter 1'],
      [0x9a2, 'TPM_RC_BAD_AUTH', 'session 1'],
      [0x14a, 'TPM_RC_NV_UNINITIALIZED', undefined],
      [0x921, 'TPM_RC_LOCKOUT', undefined],
      [0x910, 'TPM_RC_REFERENCE_H0', undefined],
    ];
    for (const [code, name, where] of cases) {
      const e = new TpmError(code, 'TPM2_Test');
      expect(e.rcName, code.toString(16)).toBe(name);
      expect(e.info.where).toBe(where);
      expect(e).toBeInstanceOf(TpmFailure);
    }
    const e = new TpmError(0x902, 'TPM2_Load');
    expect(e.message).toBe('TPM2_Load failed: 0x902 TPM_RC_OBJECT_MEMORY: out of object slots; flush transient handles');
    expect(e.baseCode).toBe(0x902);
    expect(new TpmError(0x18b, 'x').baseCode).toBe(0x08b);
    expect(describeRc(0x902).warning).toBe(true);
    expect(describeRc(0x1e).name).toMatch(/TPM12/);
  });
});

describe('the TPM setting', () => {
  it('parses device, swtpm TCP and swtpm Unix settings', () => {
    expect(parseTpmUrl('device:/dev/tpmrm0')).toEqual({ kind: 'device', path: '/dev/tpmrm0' });
    expect(parseTpmUrl('swtpm:host=127.0.0.1,port=2321')).toEqual({ kind: 'tcp', host: '127.0.0.1', port: 2321, ctrlPort: 2322 });
    expect(parseTpmUrl('swtpm:host=10.0.0.2,port=2321,ctrl=3000')).toEqual({ kind: 'tcp', host: '10.0.0.2', port: 2321, ctrlPort: 3000 });
    expect(parseTpmUrl('swtpm:unix=/run/s.sock')).toEqual({ kind: 'unix', path: '/run/s.sock' });
    expect(parseTpmUrl('swtpm:unix=/run/s.sock,ctrl=/run/c.sock')).toEqual({ kind: 'unix', path: '/run/s.sock', ctrlPath: '/run/c.sock' });
    for (const bad of ['', 'tpm', 'device:tpmrm0', 'swtpm:port=0', 'swtpm:port=x', 'swtpm:host=a', 'swtpm:port=1,bogus=2', 'swtpm:unix=rel', 'mssim:port=1']) {
      expect(() => parseTpmUrl(bad), bad).toThrow(TpmConfigError);
    }
  });
});

/** A fake swtpm data port: `onCommand` decides what each connection's command gets back. */
async function fakeServer(onCommand: (sock: Socket, cmd: Buffer, connection: number) => void): Promise<{ server: Server; port: number }> {
  let connections = 0;
  const server = createServer((sock) => {
    const n = ++connections;
    sock.on('data', (d) => onCommand(sock, d, n));
    sock.on('error', () => undefined);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { server, port: (server.address() as { port: number }).port };
}

function getRandomResponse(bytes: Uint8Array): Buffer {
  const w = new Writer().u16(0x8001).u32(0).u32(0).tpm2b(bytes);
  return Buffer.from(w.patchU32(2, w.length).finish());
}

describe('framing over a socket', () => {
  const servers: Server[] = [];
  afterEach(() => {
    for (const s of servers.splice(0)) s.close();
  });
  const client = async (handler: Parameters<typeof fakeServer>[0], timeoutMs = 500): Promise<TpmClient> => {
    const { server, port } = await fakeServer(handler);
    servers.push(server);
    return TpmClient.open(`swtpm:host=127.0.0.1,port=${port}`, { timeoutMs });
  };

  it('reads a response split over several packets', async () => {
    const c = await client((s) => {
      const r = getRandomResponse(new Uint8Array([1, 2, 3, 4]));
      s.write(r.subarray(0, 3));
      setTimeout(() => s.write(r.subarray(3, 11)), 10);
      setTimeout(() => s.write(r.subarray(11)), 20);
    });
    expect([...(await c.getRandom(4))]).toEqual([1, 2, 3, 4]);
    await c.close();
  });

  it('refuses sizes below the header and above the bound', async () => {
    for (const size of [4, 9, 100_000]) {
      const c = await client((s) => {
        const b = Buffer.alloc(10);
        b.writeUInt16BE(0x8001, 0);
        b.writeUInt32BE(size, 2);
        s.write(b);
      });
      await expect(c.getRandom(4)).rejects.toThrow(size < 10 ? /less than the 10-byte header/ : /over the 8192-byte bound/);
      await c.close();
    }
  });

  it('times out a TPM that does not answer, and refuses bytes beyond the frame', async () => {
    const silent = await client(() => undefined, 200);
    await expect(silent.getRandom(4)).rejects.toThrow(/no complete response within 200 ms/);
    await silent.close();
    const chatty = await client((s) => s.write(Buffer.concat([getRandomResponse(new Uint8Array([1])), Buffer.from([0])])));
    await expect(chatty.getRandom(1)).rejects.toThrow(TpmTransportError);
    await chatty.close();
  });

  it('reconnects once and retries when the connection drops mid-command', async () => {
    const c = await client((s, _cmd, n) => {
      if (n === 1) s.destroy();
      else s.write(getRandomResponse(new Uint8Array([7])));
    });
    expect([...(await c.getRandom(1))]).toEqual([7]);
    expect(c.stats.reconnects).toBe(1);
    await c.close();
    const dead = await client((s) => s.destroy());
    await expect(dead.getRandom(1)).rejects.toMatchObject({ name: 'TpmTransportError', connectionLost: true });
    await dead.close();
  });

  it('sends Startup(CLEAR) and retries once on TPM_RC_INITIALIZE', async () => {
    let initialized = false;
    const seen: number[] = [];
    const c = await client((s, cmd) => {
      const cc = cmd.readUInt32BE(6);
      seen.push(cc);
      const rc = Buffer.alloc(10);
      rc.writeUInt16BE(0x8001, 0);
      rc.writeUInt32BE(10, 2);
      if (cc === 0x144) {
        initialized = true;
        s.write(rc);
      } else if (!initialized) {
        rc.writeUInt32BE(0x100, 6);
        s.write(rc);
      } else s.write(getRandomResponse(new Uint8Array([5])));
    });
    expect([...(await c.getRandom(1))]).toEqual([5]);
    expect(seen).toEqual([0x17b, 0x144, 0x17b]);
    expect(c.stats.startupsSent).toBe(1);
    await c.close();
  });
});

/** Every response parser of the driver, for the fuzzer. */
const SPECS: commands.CommandSpec<unknown>[] = [
  commands.startup(),
  commands.selfTest(),
  commands.getCapability(1, 0x80000000, 64),
  commands.getCapability(6, 0x100, 64),
  commands.getCapability(0, 0, 64),
  commands.getCapability(8, 0, 64),
  commands.getCapability(5, 0, 8),
  commands.getRandom(32),
  commands.createPrimary(0x40000001, eccSigningKeyTemplate()),
  commands.create(0x80000000, eccSigningKeyTemplate()),
  commands.load(0x80000000, new Uint8Array(4), new Uint8Array(4)),
  commands.readPublic(0x81000001),
  commands.sign(0x81000001, new Uint8Array(32)),
  commands.flushContext(0x80000000),
  commands.evictControl(0x40000001, 0x80000000, 0x81000002),
  commands.nvDefineSpace(0x40000001, { nvIndex: 0x01000000, nameAlg: 11, attributes: 0, authPolicy: new Uint8Array(0), dataSize: 8 }),
  commands.nvUndefineSpace(0x40000001, 0x01000000),
  commands.nvIncrement(0x01000000, 0x01000000),
  commands.nvRead(0x01000000, 0x01000000, 8, 0),
  commands.nvReadPublic(0x01000000),
  commands.certify(0x81000001, 0x80000000, new Uint8Array(0)),
];

/** Random bytes under a valid success header, so the parser gets past the header into the body. */
function randomResponse(tag: number, bodyLen: number): Uint8Array {
  const b = Buffer.concat([Buffer.alloc(10), randomBytes(bodyLen)]);
  b.writeUInt16BE(tag, 0);
  b.writeUInt32BE(b.length, 2);
  b.writeUInt32BE(0, 6);
  return b;
}

/** Must parse or throw a TpmFailure: a RangeError or TypeError would mean a parser read past its input. */
function expectParsesOrTpmFailure(f: () => unknown, label: string): void {
  try {
    f();
  } catch (e) {
    if (!(e instanceof TpmFailure)) throw new Error(`${label}: threw ${(e as Error)?.name}: ${(e as Error)?.message}`);
  }
}

describe('fuzzing the response parsers (random bytes)', () => {
  it('every command parser rejects random and truncated bytes with a typed error', () => {
    for (const spec of SPECS) {
      for (let i = 0; i < 150; i++) {
        const len = i % 3 === 0 ? Math.floor(Math.random() * 12) : Math.floor(Math.random() * 300);
        expectParsesOrTpmFailure(() => commands.decodeResponse(spec, randomBytes(len)), `${spec.name} random`);
        const framed = randomResponse(i % 2 ? 0x8002 : 0x8001, len);
        expectParsesOrTpmFailure(() => commands.decodeResponse(spec, framed), `${spec.name} framed`);
        for (let cut = 0; cut < framed.length; cut += 13) {
          expect(() => commands.decodeResponse(spec, framed.subarray(0, cut)), `${spec.name} truncated`).toThrow(TpmFormatError);
        }
      }
    }
  });

  it('the structure parsers (TPMS_ATTEST, TPMT_SIGNATURE, TPMT_PUBLIC) reject random bytes with a typed error', () => {
    for (let i = 0; i < 3000; i++) {
      const b = randomBytes(Math.floor(Math.random() * 200));
      if (i % 2 && b.length >= 4) b.writeUInt32BE(0xff544347, 0);
      expectParsesOrTpmFailure(() => parseAttest(b), 'attest');
      expectParsesOrTpmFailure(() => readSignature(new Reader(b, 'sig')), 'signature');
      const pub = Buffer.from(b);
      if (pub.length >= 2) pub.writeUInt16BE([0x23, 0x01, 0x08, 0x25][i % 4]!, 0);
      expectParsesOrTpmFailure(() => readPublic(new Reader(pub, 'public')), 'public');
    }
  });
});
