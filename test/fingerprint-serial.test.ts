// The fingerprint driver against the virtual sensor: real serialport, real ptys (socat), the module in its own process.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  BadChecksumError,
  ConfirmationError,
  discoverSensor,
  FingerprintSensor,
  listCandidatePorts,
  NoFingerError,
  quantise4,
  SensorNotFoundError,
  SensorTimeoutError,
  SensorVanishedError,
  TruncatedPacketError,
} from '../drivers/fingerprint/index.ts';
import { VirtualFingerprintSensor } from '../drivers/virtual/fingerprint-sensor.ts';
import { main } from '../cli/main.ts';
import { requireSocat, SocatPty } from './helpers/pty.ts';

const W = 256;
const H = 288;

/** A gray test image with every level present, different per seed. */
function testImage(seed: number, w = W, h = H): Buffer {
  const b = Buffer.alloc(w * h);
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) b[y * w + x] = (x * 3 + y * 5 + seed * 17 + ((x * y) >> 4)) & 0xff;
  return b;
}

let dir: string;
let sensor: VirtualFingerprintSensor;
let originals: Buffer[];

beforeAll(async () => {
  requireSocat();
  dir = await mkdtemp(join(tmpdir(), 'bk-fp-test-'));
  originals = [testImage(1), testImage(2)];
  await sharp(originals[0]!, { raw: { width: W, height: H, channels: 1 } }).png().toFile(join(dir, 'a.png'));
  await sharp(originals[1]!, { raw: { width: W, height: H, channels: 1 } }).png().toFile(join(dir, 'b.png'));
  // A colour image of another size: the module gray-converts and cover-fits it.
  await sharp(Buffer.alloc(400 * 300 * 3, 90), { raw: { width: 400, height: 300, channels: 3 } }).png().toFile(join(dir, 'c.png'));
  sensor = await VirtualFingerprintSensor.start({ dir, name: 'ttyFP0', baud: 115200, images: dir, pacing: false });
});

afterAll(async () => {
  await sensor?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

async function withDriver<T>(fn: (d: FingerprintSensor) => Promise<T>, o: Partial<ConstructorParameters<typeof FingerprintSensor>[0]> = {}): Promise<T> {
  const d = new FingerprintSensor({ path: sensor.path, baudRate: 115200, packetTimeoutMs: 400, ...o });
  await d.open();
  try {
    return await fn(d);
  } finally {
    await d.close();
  }
}

/** Captures and checks the result is byte-exact to the image the module served (4-bit quantised). */
async function captureExact(d: FingerprintSensor): Promise<void> {
  const captured = sensor.next('captured');
  const img = await d.captureImage({ pollMs: 5, timeoutMs: 3000 });
  const index = (await captured)['index'] as number;
  expect(img.width).toBe(W);
  expect(img.height).toBe(H);
  expect(Buffer.from(img.data).equals(Buffer.from(quantise4(await sensor.image(index))))).toBe(true);
}

describe('driver against the virtual sensor', () => {
  it('reads the system parameters', async () => {
    const p = await withDriver((d) => d.readSystemParameters());
    expect(p).toMatchObject({ packetSize: 128, packetSizeCode: 2, baud: 115200, baudMultiplier: 12, address: 0xffffffff, librarySize: 1000 });
  });

  it('captures images byte-exact to what the module served, any source size', async () => {
    await withDriver(async (d) => {
      const first = sensor.next('captured');
      const img = await d.captureImage({ pollMs: 5 });
      expect((await first)['index']).toBe(0);
      // The PNG a.png went through sharp and the 4-bit wire: equal to the original, quantised.
      expect(Buffer.from(img.data).equals(Buffer.from(quantise4(originals[0]!)))).toBe(true);
      await captureExact(d); // b.png
      await captureExact(d); // c.png, 400x300 colour, fitted
      expect([...(await sensor.image(2)).slice(0, 3)]).toEqual([90, 90, 90]);
    });
  });

  it('polls through "no finger" until a finger is placed, and gives up with NoFingerError', async () => {
    await withDriver(async (d) => {
      const before = (await sensor.status())['genImg'] as number;
      await sensor.fault({ type: 'noFinger', polls: 6 });
      await captureExact(d);
      expect(((await sensor.status())['genImg'] as number) - before).toBe(7);
      await sensor.setFinger(false);
      try {
        await expect(d.captureImage({ pollMs: 10, timeoutMs: 200 })).rejects.toBeInstanceOf(NoFingerError);
      } finally {
        await sensor.setFinger(true);
      }
    });
  });

  it('recovers from a bad checksum, a truncated packet and garbage, on acknowledges and on image data', async () => {
    await withDriver(async (d) => {
      const faults = [
        { type: 'badChecksum', target: 'ack' },
        { type: 'truncate', target: 'ack' },
        { type: 'garbage', target: 'ack', bytes: 40 },
        { type: 'badChecksum', target: 'data', index: 10 },
        { type: 'truncate', target: 'data', index: 100 },
        { type: 'garbage', target: 'data', index: 287, bytes: 300 },
      ] as const;
      for (const f of faults) {
        const retries = d.stats.retries;
        const dropped = d.stats.droppedBytes;
        await sensor.fault(f);
        if (f.target === 'ack') expect(await d.readSystemParameters()).toMatchObject({ packetSize: 128 });
        else await captureExact(d);
        expect(d.stats.droppedBytes, f.type).toBeGreaterThan(dropped);
        // Garbage is skipped by resynchronising; a lost packet costs a retry.
        expect(d.stats.retries - retries, `${f.type} ${f.target}`).toBe(f.type === 'garbage' ? 0 : 1);
      }
      expect(((await sensor.status())['faults'] as number)).toBe(0);
    });
  });

  it('without retries, the faults surface as typed errors', async () => {
    await withDriver(
      async (d) => {
        await sensor.fault({ type: 'badChecksum', target: 'ack' });
        await expect(d.readSystemParameters()).rejects.toBeInstanceOf(BadChecksumError);
        await sensor.fault({ type: 'truncate', target: 'ack' });
        await expect(d.readSystemParameters()).rejects.toBeInstanceOf(TruncatedPacketError);
        await sensor.fault({ type: 'badChecksum', target: 'data', index: 3 });
        await expect(d.captureImage({ pollMs: 5 })).rejects.toThrow(/UpImage: 36736 bytes of image data, expected 36864 .*checksum/);
        // And the link is still good.
        await captureExact(d);
      },
      { retries: 0 },
    );
  });

  it('reports a sensor unplugged mid-upload as SensorVanishedError and reopens when it returns', async () => {
    await withDriver(async (d) => {
      const vanished = new Promise((r) => d.once('vanished', r));
      await sensor.fault({ type: 'disconnect', afterDataPackets: 50 });
      const err = await d.captureImage({ pollMs: 5 }).catch((e) => e);
      expect(err).toBeInstanceOf(SensorVanishedError);
      expect((err as SensorVanishedError).code).toBe('SensorVanished');
      await vanished;
      expect(d.isOpen).toBe(false);
      // While it is away, commands fail fast with the same error.
      await expect(d.readSystemParameters()).rejects.toBeInstanceOf(SensorVanishedError);
      await sensor.plugIn();
      await d.waitUntilReturned(5000);
      expect(d.stats.reopens).toBe(1);
      await captureExact(d);
    });
  });
});

describe('module settings', () => {
  it('verifies the password (right and wrong), answers only its address, changes packet size', async () => {
    const s = await VirtualFingerprintSensor.start({ baud: 57600, password: 0x1234abcd, address: 0xc0ffee01, packetSize: 64, pacing: false });
    try {
      const wrong = new FingerprintSensor({ path: s.path, address: 0xc0ffee01, password: 0x1111 });
      const e = await wrong.open().catch((x) => x);
      expect(e).toBeInstanceOf(ConfirmationError);
      expect((e as ConfirmationError).confirmation).toBe(0x13);
      expect((e as ConfirmationError).kind).toBe('input');
      // Not verified: every other command is refused.
      const unverified = new FingerprintSensor({ path: s.path, address: 0xc0ffee01, verifyOnOpen: false });
      await unverified.open();
      await expect(unverified.readSystemParameters()).rejects.toMatchObject({ confirmation: 0x21, code: 'FingerprintPasswordRequired' });
      await unverified.close();
      // Another address: silence, so a timeout (after the retries).
      const otherAddr = new FingerprintSensor({ path: s.path, password: 0x1234abcd, packetTimeoutMs: 150, retries: 1 });
      await expect(otherAddr.open()).rejects.toBeInstanceOf(SensorTimeoutError);
      const right = new FingerprintSensor({ path: s.path, address: 0xc0ffee01, password: 0x1234abcd });
      await right.open();
      expect(await right.readSystemParameters()).toMatchObject({ address: 0xc0ffee01, packetSize: 64, baud: 57600 });
      const img = await right.captureImage({ pollMs: 5 });
      expect(img.data.length).toBe(W * H);
      await right.setPacketSize(256);
      expect((await right.readSystemParameters()).packetSize).toBe(256);
      expect((await right.captureImage({ pollMs: 5 })).data.length).toBe(W * H);
      await right.auraLed(3, 0, 2);
      expect((await s.status())['led']).toEqual({ control: 3, speed: 0, color: 2, count: 0 });
      await expect(right.led(true)).rejects.toMatchObject({ confirmation: 0xfc });
      await right.close();
      // A driver at the wrong baud rate hears nothing.
      const fast = new FingerprintSensor({ path: s.path, baudRate: 115200, address: 0xc0ffee01, password: 0x1234abcd, packetTimeoutMs: 150, retries: 0 });
      await expect(fast.open()).rejects.toBeInstanceOf(SensorTimeoutError);
    } finally {
      await s.stop();
    }
  });

  it('paces its output at the baud rate: an upload takes at least the wire time', async () => {
    const s = await VirtualFingerprintSensor.start({ baud: 115200 });
    try {
      const d = new FingerprintSensor({ path: s.path, baudRate: 115200 });
      await d.open();
      // No image captured yet: the datasheet's "cannot upload image".
      await expect(d.uploadImagePacked()).rejects.toMatchObject({ confirmation: 0x0f, code: 'FingerprintImageUploadError' });
      expect(await d.genImg()).toBe(true);
      const t1 = performance.now();
      const packed = await d.uploadImagePacked();
      const ms = performance.now() - t1;
      const wireBytes = 12 + 12 + 288 * (128 + 11);
      const wireMs = (wireBytes * 10 * 1000) / 115200;
      expect(packed.length).toBe(36_864);
      expect(ms).toBeGreaterThan(wireMs * 0.97);
      expect(ms).toBeLessThan(wireMs * 1.5);
      await d.close();
    } finally {
      await s.stop();
    }
  });
});

describe('discovery', () => {
  it('finds the module among ptys with nothing and a non-sensor behind them, without udev', async () => {
    const silent = await SocatPty.start(join(dir, 'ttySilent'), 'silent');
    const echo = await SocatPty.start(join(dir, 'ttyEcho'), 'echo');
    try {
      const found = await discoverSensor({
        candidates: () => [join(dir, 'ttyMissing'), silent.path, echo.path, sensor.path],
        baudRates: [57600, 115200],
        probeTimeoutMs: 150,
      });
      expect(found.path).toBe(sensor.path);
      expect(found.baudRate).toBe(115200);
      expect(found.params.packetSize).toBe(128);
      expect(found.tried.map((t) => `${t.path.slice(dir.length + 1)}@${t.baudRate}`)).toEqual([
        'ttyMissing@57600',
        'ttySilent@57600',
        'ttySilent@115200',
        'ttyEcho@57600',
        'ttyEcho@115200',
        'ttyFP0@57600',
      ]);
      // The configured port goes first.
      const direct = await discoverSensor({ port: sensor.path, baudRate: 115200, candidates: () => [silent.path] });
      expect(direct.tried).toEqual([]);
      await expect(discoverSensor({ candidates: () => [silent.path], baudRates: [57600], probeTimeoutMs: 100 })).rejects.toBeInstanceOf(SensorNotFoundError);
    } finally {
      await silent.stop();
      await echo.stop();
    }
    // The default candidate list comes from /dev without udev and never throws.
    expect(Array.isArray(await listCandidatePorts())).toBe(true);
  });
});

describe('biokiosk capture', () => {
  it('writes a PNG from the module; bad usage exits 2', async () => {
    const out = join(dir, 'captured.png');
    const lines: string[] = [];
    const write = process.stdout.write.bind(process.stdout);
    process.stdout.write = ((s: string) => (lines.push(String(s)), true)) as typeof process.stdout.write;
    let code: number;
    try {
      code = await main(['capture', '--modality', 'fingerprint', '--port', sensor.path, '--baud', '115200', '--out', out, '--json']);
    } finally {
      process.stdout.write = write;
    }
    expect(code).toBe(0);
    expect(JSON.parse(lines.join(''))).toMatchObject({ ok: true, width: W, height: H, port: sensor.path, baud: 115200 });
    const meta = await sharp(out).metadata();
    expect([meta.width, meta.height, meta.format]).toEqual([W, H, 'png']);
    const errs: string[] = [];
    const ewrite = process.stderr.write.bind(process.stderr);
    process.stderr.write = ((s: string) => (errs.push(String(s)), true)) as typeof process.stderr.write;
    try {
      expect(await main(['capture', '--modality', 'face', '--port', sensor.path, '--out', out])).toBe(2);
      expect(await main(['capture', '--modality', 'fingerprint', '--port', sensor.path, '--out', out, '--password', 'xyz'])).toBe(2);
      expect(await main(['capture', '--modality', 'fingerprint', '--port', join(dir, 'nope'), '--baud', '57600', '--out', out])).toBe(2);
    } finally {
      process.stderr.write = ewrite;
    }
    expect(errs.join('')).toMatch(/capture supports: fingerprint/);
  });
});
