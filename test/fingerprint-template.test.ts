import { describe, expect, it } from 'vitest';
import { mulberry32 } from '../models/common/prng.ts';
import { decodeFingerRecordIso, decodeIsoRecord, encodeFingerRecordIso, encodeIsoRecord, IsoRecordError, type IsoFingerMinutiaeRecord } from '../models/fingerprint/iso19794-2.ts';
import { angleToIsoUnits, ISO_ANGLE_UNIT, isoUnitsToAngle, type FingerRecord, type Minutia } from '../models/fingerprint/minutiae.ts';
import { decodeFingerprintTemplate, encodeFingerprintTemplate, MAX_TEMPLATE_BYTES, MAX_TEMPLATE_MINUTIAE } from '../models/fingerprint/template.ts';
import { BadTemplateError } from '../protocol/errors.ts';

const hex = (s: string) => Uint8Array.from(s.replace(/\s+/g, '').match(/../g)!.map((b) => parseInt(b, 16)));
const deg = (d: number) => (d * Math.PI) / 180;

/*
 * Test vector written byte by byte from the ISO/IEC 19794-2:2005 field layout (not produced by the encoder):
 * 256 x 288 image at 197 px/cm (500 dpi), one view of finger 2 (right index), live-scan plain, quality 80, two
 * minutiae: an ending at (100, 200) pointing up (90 deg -> 64 units), quality 60, and a bifurcation at (255, 7)
 * pointing left (180 deg -> 128 units), quality 100. Total length 24 + 4 + 2 * 6 + 2 = 42 bytes.
 */
const VECTOR = hex(`
  464d5200 20323000 0000002a          -- "FMR\\0", " 20\\0", record length 42
  0000                                -- certification 0, device type 0
  0100 0120 00c5 00c5                 -- 256 x 288 px, 197 x 197 px/cm
  01 00                               -- one finger view, reserved
  02 00 50 02                         -- finger 2, view 0 / impression 0, quality 80, 2 minutiae
  4064 00c8 40 3c                     -- 01|100, 00|200, 64 units, quality 60
  80ff 0007 80 64                     -- 10|255, 00|7, 128 units, quality 100
  0000                                -- no extended data
`.replace(/--[^\n]*/g, ''));

const VECTOR_RECORD: IsoFingerMinutiaeRecord = {
  captureEquipmentCertification: 0,
  captureDeviceTypeId: 0,
  width: 256,
  height: 288,
  resolution: { x: 197, y: 197 },
  views: [{
    fingerPosition: 2, viewNumber: 0, impressionType: 0, fingerQuality: 80,
    minutiae: [
      { x: 100, y: 200, angle: deg(90), type: 'ending', quality: 60 },
      { x: 255, y: 7, angle: deg(180), type: 'bifurcation', quality: 100 },
    ],
    extendedData: [],
  }],
};

/* Second vector: certification 1 / device 0x123, view 3 of finger 7 as a swipe (8), one 'other' minutia at the
 * image's last pixel with angle 255 units, and one vendor extended data area (type 0x0101, 2 data bytes). */
const VECTOR2 = hex(`
  464d5200 20323000 0000002a
  1123
  0010 0020 0062 0063
  01 00
  07 38 00 01
  000f 001f ff 00
  0006 0101 0006 aabb
`);

function field(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(IsoRecordError);
    expect(e).toBeInstanceOf(BadTemplateError);
    return (e as IsoRecordError).field;
  }
  throw new Error('expected an IsoRecordError');
}

/** A copy of the vector with bytes replaced at an offset and, optionally, its length cut and header fixed. */
function patched(base: Uint8Array, at: number, bytes: number[], opts: { length?: number; fixLength?: boolean } = {}): Uint8Array {
  const out = base.slice(0, opts.length ?? base.length);
  bytes.forEach((b, i) => { out[at + i] = b; });
  if (opts.fixLength) new DataView(out.buffer).setUint32(8, out.length);
  return out;
}

describe('ISO/IEC 19794-2:2005 record', () => {
  it('decodes the hand-built test vector and encodes the same bytes', () => {
    expect(VECTOR.length).toBe(42);
    const r = decodeIsoRecord(VECTOR);
    expect(r.views[0]!.minutiae.map((m) => m.angle)).toEqual([64 * ISO_ANGLE_UNIT, 128 * ISO_ANGLE_UNIT]);
    expect(r).toEqual(VECTOR_RECORD);
    expect(Buffer.from(encodeIsoRecord(VECTOR_RECORD)).toString('hex')).toBe(Buffer.from(VECTOR).toString('hex'));
  });

  it('decodes the second vector (device ID, swipe, extended data) and re-encodes it byte for byte', () => {
    const r = decodeIsoRecord(VECTOR2);
    expect(r.captureEquipmentCertification).toBe(1);
    expect(r.captureDeviceTypeId).toBe(0x123);
    expect(r.resolution).toEqual({ x: 98, y: 99 });
    expect(r.views[0]).toMatchObject({ fingerPosition: 7, viewNumber: 3, impressionType: 8, fingerQuality: 0 });
    expect(r.views[0]!.minutiae).toEqual([{ x: 15, y: 31, angle: 255 * ISO_ANGLE_UNIT, type: 'other', quality: 0 }]);
    expect(r.views[0]!.extendedData).toEqual([{ type: 0x0101, data: Uint8Array.from([0xaa, 0xbb]) }]);
    expect(encodeIsoRecord(r)).toEqual(VECTOR2);
  });

  it('documents the angle convention: counter-clockwise, 1.40625 degree units, rounding to the nearest unit', () => {
    expect(angleToIsoUnits(0)).toBe(0);
    expect(angleToIsoUnits(deg(90))).toBe(64); // up on the image
    expect(angleToIsoUnits(deg(270))).toBe(192); // down on the image
    expect(angleToIsoUnits(deg(-1.40625))).toBe(255);
    expect(angleToIsoUnits(deg(359.5))).toBe(0); // wraps
    expect(isoUnitsToAngle(128)).toBeCloseTo(Math.PI, 12);
  });

  it('round-trips random finger records exactly after quantisation', () => {
    const rand = mulberry32(7);
    for (let t = 0; t < 200; t++) {
      const width = 100 + Math.floor(rand() * 800), height = 100 + Math.floor(rand() * 800);
      const minutiae: Minutia[] = Array.from({ length: Math.floor(rand() * 120) }, () => ({
        x: rand() * (width - 1), y: rand() * (height - 1), angle: rand() * 2 * Math.PI,
        type: (['ending', 'bifurcation', 'other'] as const)[Math.floor(rand() * 3)]!, quality: Math.floor(rand() * 101),
      }));
      const rec: FingerRecord = { width, height, resolution: { x: 500, y: 500 }, minutiae, quality: Math.floor(rand() * 101) };
      const bytes = encodeFingerRecordIso(rec);
      const back = decodeFingerRecordIso(bytes);
      expect(back.resolution).toEqual({ x: 500, y: 500 });
      back.minutiae.forEach((m, i) => {
        const o = minutiae[i]!;
        expect(m.x).toBe(Math.round(o.x));
        expect(m.y).toBe(Math.round(o.y));
        const d = Math.abs(((m.angle - o.angle + 3 * Math.PI) % (2 * Math.PI)) - Math.PI);
        expect(d).toBeLessThanOrEqual(ISO_ANGLE_UNIT / 2 + 1e-9);
      });
      // Once quantised, the record is a fixed point.
      expect(decodeFingerRecordIso(encodeFingerRecordIso(back))).toEqual(back);
      expect(encodeFingerRecordIso(back)).toEqual(bytes);
    }
  });

  it('names the field of every malformed input', () => {
    expect(field(() => decodeIsoRecord(new Uint8Array(0)))).toBe('formatIdentifier');
    expect(field(() => decodeIsoRecord(patched(VECTOR, 0, [0x46, 0x49, 0x52])))).toBe('formatIdentifier');
    expect(field(() => decodeIsoRecord(patched(VECTOR, 4, [0x20, 0x32, 0x31])))).toBe('version');
    expect(field(() => decodeIsoRecord(VECTOR.subarray(0, 10)))).toBe('recordLength');
    expect(field(() => decodeIsoRecord(patched(VECTOR, 11, [0x2b])))).toBe('recordLength'); // says 43, has 42
    expect(field(() => decodeIsoRecord(patched(VECTOR, 11, [0x10], { length: 16 })))).toBe('recordLength'); // < header
    expect(field(() => decodeIsoRecord(patched(VECTOR, 0, [], { length: 30, fixLength: true })))).toBe('numberOfMinutiae'); // truncated minutiae
    expect(field(() => decodeIsoRecord(patched(VECTOR, 27, [5])))).toBe('numberOfMinutiae'); // count beyond the data
    expect(field(() => decodeIsoRecord(patched(VECTOR, 0, [], { length: 40, fixLength: true })))).toBe('extendedDataBlockLength');
    expect(field(() => decodeIsoRecord(patched(VECTOR, 27, [1])))).toBe('extendedDataBlockLength'); // one minutia fewer: misaligned
    expect(field(() => decodeIsoRecord(patched(VECTOR, 22, [0])))).toBe('numberOfFingerViews');
    expect(field(() => decodeIsoRecord(patched(VECTOR, 22, [2])))).toBe('fingerViewHeader'); // second view missing
    expect(field(() => decodeIsoRecord(patched(VECTOR, 23, [1])))).toBe('reserved');
    expect(field(() => decodeIsoRecord(patched(VECTOR, 14, [0, 0])))).toBe('imageSizeX');
    expect(field(() => decodeIsoRecord(patched(VECTOR, 16, [0, 0])))).toBe('imageSizeY');
    expect(field(() => decodeIsoRecord(patched(VECTOR, 18, [0, 0])))).toBe('resolutionX');
    expect(field(() => decodeIsoRecord(patched(VECTOR, 20, [0, 0])))).toBe('resolutionY');
    expect(field(() => decodeIsoRecord(patched(VECTOR, 24, [11])))).toBe('fingerPosition');
    expect(field(() => decodeIsoRecord(patched(VECTOR, 25, [0x05])))).toBe('impressionType');
    expect(field(() => decodeIsoRecord(patched(VECTOR, 26, [101])))).toBe('fingerQuality');
    expect(field(() => decodeIsoRecord(patched(VECTOR, 28, [0xc0])))).toBe('minutiaType'); // type bits 11
    expect(field(() => decodeIsoRecord(patched(VECTOR, 28, [0x41, 0x00])))).toBe('minutiaX'); // x = 256 = width
    expect(field(() => decodeIsoRecord(patched(VECTOR, 30, [0x01, 0x20])))).toBe('minutiaY'); // y = 288 = height
    expect(field(() => decodeIsoRecord(patched(VECTOR, 30, [0x40, 0xc8])))).toBe('minutiaReserved');
    expect(field(() => decodeIsoRecord(patched(VECTOR, 33, [101])))).toBe('minutiaQuality');
    // Extended data: block longer than the record, area shorter than its header, reserved type 0, area past the block.
    expect(field(() => decodeIsoRecord(patched(VECTOR, 40, [0, 6])))).toBe('extendedDataBlockLength');
    expect(field(() => decodeIsoRecord(patched(VECTOR2, 38, [0x00, 0x03])))).toBe('extendedDataAreaLength');
    expect(field(() => decodeIsoRecord(patched(VECTOR2, 36, [0x00, 0x00])))).toBe('extendedDataType');
    expect(field(() => decodeIsoRecord(patched(VECTOR2, 38, [0x00, 0x07])))).toBe('extendedDataAreaLength');
    expect(field(() => decodeIsoRecord(patched(VECTOR2, 34, [0x00, 0x03], { length: 39, fixLength: true })))).toBe('extendedDataAreaLength');
    // Trailing bytes the header counts but no view accounts for.
    const longer = new Uint8Array(44); longer.set(VECTOR); new DataView(longer.buffer).setUint32(8, 44);
    expect(field(() => decodeIsoRecord(longer))).toBe('recordLength');
    // The same finger view twice.
    const twice = hex('464d5200 20323000 00000024 0000 0100 0120 00c5 00c5 02 00 02005000 0000 02005000 0000');
    expect(twice.length).toBe(36);
    expect(decodeIsoRecord(patched(twice, 31, [1 << 4])).views).toHaveLength(2); // distinct view numbers are fine
    expect(field(() => decodeIsoRecord(twice))).toBe('viewNumber');
  });

  it('refuses to encode what the format cannot hold, naming the field', () => {
    const base = structuredClone(VECTOR_RECORD);
    const at = (f: (r: IsoFingerMinutiaeRecord) => void) => { const r = structuredClone(base); f(r); return field(() => encodeIsoRecord(r)); };
    expect(at((r) => { r.views[0]!.minutiae[0]!.x = 256; })).toBe('minutiaX');
    expect(at((r) => { r.views[0]!.minutiae[0]!.y = -1; })).toBe('minutiaY');
    expect(at((r) => { r.views[0]!.minutiae[0]!.angle = NaN; })).toBe('minutiaAngle');
    expect(at((r) => { r.views[0]!.minutiae[0]!.quality = 101; })).toBe('minutiaQuality');
    expect(at((r) => { r.views[0]!.minutiae = Array.from({ length: 256 }, () => ({ x: 1, y: 1, angle: 0, type: 'ending' as const, quality: 50 })); })).toBe('numberOfMinutiae');
    expect(at((r) => { r.views = []; })).toBe('numberOfFingerViews');
    expect(at((r) => { r.width = 0; })).toBe('imageSizeX');
    expect(at((r) => { r.captureDeviceTypeId = 0x1000; })).toBe('captureDeviceTypeId');
    expect(at((r) => { r.views[0]!.impressionType = 4; })).toBe('impressionType');
    expect(at((r) => { r.views[0]!.extendedData = [{ type: 0, data: new Uint8Array(1) }]; })).toBe('extendedDataType');
  });

  it('survives fuzzing: random, truncated and bit-flipped inputs only ever give IsoRecordError', () => {
    const rand = mulberry32(99);
    const valid = [VECTOR, VECTOR2, encodeFingerRecordIso({ width: 300, height: 400, resolution: { x: 500, y: 500 }, quality: 50, minutiae: Array.from({ length: 40 }, (_, i) => ({ x: i * 7, y: i * 9, angle: i / 7, type: 'ending' as const, quality: 60 })) })];
    const t0 = Date.now();
    let accepted = 0;
    for (let i = 0; i < 30_000; i++) {
      const base = valid[i % valid.length]!;
      let input: Uint8Array;
      const kind = i % 4;
      if (kind === 0) input = Uint8Array.from({ length: Math.floor(rand() * 80) }, () => Math.floor(rand() * 256));
      else if (kind === 1) input = base.slice(0, Math.floor(rand() * base.length));
      else {
        input = base.slice();
        for (let f = 0; f < 1 + Math.floor(rand() * 4); f++) input[Math.floor(rand() * input.length)]! ^= 1 << Math.floor(rand() * 8);
        if (kind === 3) new DataView(input.buffer).setUint32(8, input.length); // keep the length right to reach deeper fields
      }
      try {
        decodeIsoRecord(input);
        accepted++;
      } catch (e) {
        if (!(e instanceof IsoRecordError)) throw new Error(`input ${Buffer.from(input).toString('hex')} threw ${String(e)}`);
      }
    }
    expect(accepted).toBeGreaterThan(0); // some flips (qualities, angles) are still valid records
    expect(Date.now() - t0).toBeLessThan(20_000);
  });
});

describe('biokiosk-fingerprint/1 template', () => {
  const model = { name: 'biokiosk-minutiae-v1', sha256: 'ab'.repeat(32) };
  const record = (n: number, seed = 1): FingerRecord => {
    const rand = mulberry32(seed);
    return {
      width: 256, height: 288, resolution: { x: 500, y: 500 }, quality: 77,
      minutiae: Array.from({ length: n }, () => ({ x: Math.floor(rand() * 256), y: Math.floor(rand() * 288), angle: Math.floor(rand() * 256) * ISO_ANGLE_UNIT, type: rand() < 0.5 ? 'ending' as const : 'bifurcation' as const, quality: Math.floor(rand() * 101) })),
    };
  };

  it('round-trips and carries the model, quality and finger position', () => {
    const bytes = encodeFingerprintTemplate({ model, quality: 81, record: record(40), fingerPosition: 2 });
    expect(Buffer.from(bytes.subarray(0, 4)).toString('latin1')).toBe('BKFP');
    const t = decodeFingerprintTemplate(bytes);
    expect(t).toMatchObject({ format: 'biokiosk-fingerprint/1', model, quality: 81, fingerPosition: 2, impressionType: 0 });
    expect(t.record).toEqual(record(40));
    // The wrapped payload is a plain ISO record anyone can read.
    expect(decodeIsoRecord(bytes.subarray(41 + model.name.length)).views[0]!.minutiae).toHaveLength(40);
  });

  it('stays within 1 KB: 40 minutiae are a few hundred bytes, more than the maximum keep the best', () => {
    const b40 = encodeFingerprintTemplate({ model, quality: 50, record: record(40) });
    expect(b40.length).toBe(41 + model.name.length + 24 + 4 + 40 * 6 + 2);
    expect(MAX_TEMPLATE_MINUTIAE).toBe(116);
    const longName = { name: 'x'.repeat(255), sha256: model.sha256 };
    const many = record(250, 3);
    const big = encodeFingerprintTemplate({ model: longName, quality: 50, record: many });
    expect(big.length).toBeLessThanOrEqual(MAX_TEMPLATE_BYTES);
    const kept = decodeFingerprintTemplate(big).record.minutiae;
    expect(kept).toHaveLength(MAX_TEMPLATE_MINUTIAE);
    const cutoff = [...many.minutiae].map((m) => m.quality).sort((a, b) => b - a)[MAX_TEMPLATE_MINUTIAE - 1]!;
    expect(Math.min(...kept.map((m) => m.quality))).toBe(cutoff);
    // Original order is kept among the survivors.
    const positions = kept.map((k) => many.minutiae.findIndex((m) => m.x === k.x && m.y === k.y && m.angle === k.angle));
    expect(positions).toEqual([...positions].sort((a, b) => a - b));
  });

  it('refuses malformed templates with BadTemplateError', () => {
    const good = encodeFingerprintTemplate({ model, quality: 50, record: record(10) });
    const bad = (f: (b: Uint8Array) => Uint8Array | void) => { const b = good.slice(); return () => decodeFingerprintTemplate((f(b) as Uint8Array | undefined) ?? b); };
    expect(bad(() => new Uint8Array(10))).toThrow(/too short/);
    expect(bad((b) => { b[0] = 0x41; })).toThrow(/bad magic/);
    expect(bad((b) => { b[4] = 2; })).toThrow(/version/);
    expect(bad((b) => { b[5] = 101; })).toThrow(/quality/);
    expect(bad((b) => { b[6]! += 1; })).toThrow(/does not match its header/);
    expect(bad((b) => b.subarray(0, b.length - 1))).toThrow(/does not match its header/);
    expect(bad((b) => { b[41] = 0xff; })).toThrow(/UTF-8/);
    expect(bad((b) => { b[41 + model.name.length] = 0; })).toThrow(IsoRecordError);
    for (const f of [() => new Uint8Array(10), (b: Uint8Array) => { b[0] = 0; }]) expect(bad(f)).toThrow(BadTemplateError);
    expect(() => encodeFingerprintTemplate({ model: { name: 'm', sha256: 'xyz' }, quality: 1, record: record(1) })).toThrow(BadTemplateError);
    expect(() => encodeFingerprintTemplate({ model: { name: 'y'.repeat(256), sha256: model.sha256 }, quality: 1, record: record(1) })).toThrow(BadTemplateError);
  });

  it('survives fuzzing of the wrapper: only BadTemplateError', () => {
    const good = encodeFingerprintTemplate({ model, quality: 50, record: record(30) });
    const rand = mulberry32(5);
    for (let i = 0; i < 10_000; i++) {
      const b = good.slice(0, i % 2 ? good.length : Math.floor(rand() * good.length));
      for (let f = 0; f < 3; f++) b[Math.floor(rand() * b.length)]! ^= 1 << Math.floor(rand() * 8);
      try { decodeFingerprintTemplate(b); } catch (e) { expect(e).toBeInstanceOf(BadTemplateError); }
    }
  });
});
