import { describe, expect, it } from 'vitest';
import { decodeBmp } from '../models/common/bmp.ts';
import { decodeImage } from '../models/common/image.ts';
import { BadImageError } from '../protocol/errors.ts';

type Rgb = [number, number, number];

interface BmpSpec {
  width: number;
  height: number;
  bpp: 1 | 2 | 4 | 8 | 16 | 24 | 32;
  /** 40 = BITMAPINFOHEADER, 108 = V4, 124 = V5. */
  header?: 40 | 108 | 124;
  compression?: 0 | 1 | 3 | 6;
  palette?: Rgb[];
  /** Written to biClrUsed (0 = 2^bpp). */
  clrUsed?: number;
  /** R, G, B and (V4/V5 or ALPHABITFIELDS) A masks. */
  masks?: [number, number, number, number?];
  topDown?: boolean;
  /** The stored value of pixel (x, y): a palette index, a packed 16/32-bit pixel, or [r, g, b] for 24-bit. */
  pixel: (x: number, y: number) => number | Rgb;
}

/** Builds a BMP byte by byte, as the format describes it: file header, info header, masks, palette, padded rows. */
function makeBmp(s: BmpSpec): Buffer {
  const header = s.header ?? 40;
  const compression = s.compression ?? 0;
  const trailingMasks = header === 40 && compression === 3 ? 12 : header === 40 && compression === 6 ? 16 : 0;
  const palette = s.palette ?? [];
  const stride = Math.ceil((s.width * s.bpp) / 32) * 4;
  const offset = 14 + header + trailingMasks + palette.length * 4;
  const b = Buffer.alloc(offset + stride * s.height);
  b.write('BM', 0, 'latin1');
  b.writeUInt32LE(b.length, 2);
  b.writeUInt32LE(offset, 10);
  b.writeUInt32LE(header, 14);
  b.writeInt32LE(s.width, 18);
  b.writeInt32LE(s.topDown ? -s.height : s.height, 22);
  b.writeUInt16LE(1, 26);
  b.writeUInt16LE(s.bpp, 28);
  b.writeUInt32LE(compression, 30);
  b.writeUInt32LE(stride * s.height, 34);
  b.writeUInt32LE(s.clrUsed ?? 0, 46);
  if (s.masks) s.masks.forEach((m, i) => m !== undefined && b.writeUInt32LE(m >>> 0, 54 + i * 4));
  palette.forEach(([r, g, bl], i) => b.set([bl, g, r, 0], 14 + header + trailingMasks + i * 4));
  for (let y = 0; y < s.height; y++) {
    const row = offset + (s.topDown ? y : s.height - 1 - y) * stride;
    for (let x = 0; x < s.width; x++) {
      const v = s.pixel(x, y);
      if (Array.isArray(v)) b.set([v[2], v[1], v[0]], row + x * 3);
      else if (s.bpp === 16) b.writeUInt16LE(v, row + x * 2);
      else if (s.bpp === 32) b.writeUInt32LE(v >>> 0, row + x * 4);
      else {
        // 1/2/4/8-bit indices, packed from the most significant bit.
        const bitPos = x * s.bpp;
        const byte = row + (bitPos >> 3);
        b[byte] = b[byte]! | (v << (8 - s.bpp - (bitPos & 7)));
      }
    }
  }
  return b;
}

const pixelsOf = (img: { width: number; channels: number; data: Uint8Array }, x: number, y: number) =>
  Array.from(img.data.subarray((y * img.width + x) * img.channels, (y * img.width + x + 1) * img.channels));

const grey = (n: number): Rgb[] => Array.from({ length: n }, (_, i) => [Math.round((i * 255) / (n - 1)), Math.round((i * 255) / (n - 1)), Math.round((i * 255) / (n - 1))] as Rgb);
const colours: Rgb[] = [
  [255, 0, 0],
  [0, 255, 0],
  [0, 0, 255],
  [10, 20, 30],
];

describe('BMP decoder: palettes', () => {
  it('1-bit black and white, with a row that is not a whole number of bytes', () => {
    const on = (x: number, y: number) => (x * 7 + y * 3) % 5 < 2;
    const img = decodeBmp(makeBmp({ width: 13, height: 3, bpp: 1, palette: grey(2), pixel: (x, y) => (on(x, y) ? 1 : 0) }));
    expect([img.width, img.height, img.channels]).toEqual([13, 3, 1]);
    for (let y = 0; y < 3; y++) for (let x = 0; x < 13; x++) expect(pixelsOf(img, x, y)).toEqual([on(x, y) ? 255 : 0]);
  });

  it('4-bit colour palette gives three channels; odd width exercises the low nibble and padding', () => {
    const idx = (x: number, y: number) => (x + 2 * y) % 4;
    const img = decodeBmp(makeBmp({ width: 5, height: 4, bpp: 4, palette: colours, clrUsed: 4, pixel: idx }));
    expect(img.channels).toBe(3);
    for (let y = 0; y < 4; y++) for (let x = 0; x < 5; x++) expect(pixelsOf(img, x, y)).toEqual(colours[idx(x, y)]);
  });

  it('8-bit grey palette, top-down, short palette (biClrUsed)', () => {
    const img = decodeBmp(makeBmp({ width: 3, height: 2, bpp: 8, palette: grey(3), clrUsed: 3, topDown: true, pixel: (x, y) => (x + y) % 3 }));
    expect(img.channels).toBe(1);
    expect(Array.from(img.data)).toEqual([0, 128, 255, 128, 255, 0]);
  });

  it('8-bit palette behind a V5 header', () => {
    const img = decodeBmp(makeBmp({ width: 2, height: 2, bpp: 8, header: 124, palette: colours, clrUsed: 4, pixel: (x, y) => x + 2 * y }));
    expect([pixelsOf(img, 0, 0), pixelsOf(img, 1, 1)]).toEqual([colours[0], colours[3]]);
  });
});

describe('BMP decoder: direct colour', () => {
  it('16-bit 5-5-5 (BI_RGB) and 5-6-5 (BI_BITFIELDS)', () => {
    const p555 = decodeBmp(makeBmp({ width: 2, height: 1, bpp: 16, pixel: (x) => (x ? 0x7fff : (31 << 10) | (0 << 5) | 16) }));
    expect([pixelsOf(p555, 0, 0), pixelsOf(p555, 1, 0)]).toEqual([[255, 0, 132], [255, 255, 255]]);
    const p565 = decodeBmp(makeBmp({ width: 3, height: 1, bpp: 16, compression: 3, masks: [0xf800, 0x07e0, 0x001f], pixel: (x) => [0xf800, 0x07e0, 0x001f][x]! }));
    expect([0, 1, 2].map((x) => pixelsOf(p565, x, 0))).toEqual([[255, 0, 0], [0, 255, 0], [0, 0, 255]]);
  });

  it('24-bit round trip with odd width (row padding)', () => {
    const c = (x: number, y: number): Rgb => [x * 50, y * 60, 255 - x - y];
    const img = decodeBmp(makeBmp({ width: 3, height: 3, bpp: 24, pixel: c }));
    for (let y = 0; y < 3; y++) for (let x = 0; x < 3; x++) expect(pixelsOf(img, x, y)).toEqual(c(x, y));
  });

  it('32-bit BI_RGB ignores the fourth byte', () => {
    const img = decodeBmp(makeBmp({ width: 2, height: 1, bpp: 32, pixel: (x) => (x ? 0x12345678 : 0xff0a0b0c) }));
    expect(img.channels).toBe(3);
    expect([pixelsOf(img, 0, 0), pixelsOf(img, 1, 0)]).toEqual([[10, 11, 12], [0x34, 0x56, 0x78]]);
  });

  it('32-bit BI_BITFIELDS with an alpha mask in a V4 header gives four channels; V5 top-down too', () => {
    const masks: [number, number, number, number] = [0x0000ff00, 0x00ff0000, 0xff000000, 0x000000ff]; // B G R A byte order reversed
    const px = (x: number, y: number) => (((10 * x) << 24) | ((20 * y) << 16) | (30 << 8) | (x === 1 ? 128 : 255)) >>> 0;
    for (const [header, topDown] of [[108, false], [124, true]] as const) {
      const img = decodeBmp(makeBmp({ width: 2, height: 2, bpp: 32, header, compression: 3, masks, topDown, pixel: px }));
      expect(img.channels).toBe(4);
      expect(pixelsOf(img, 1, 1)).toEqual([30, 20, 10, 128]);
      expect(pixelsOf(img, 0, 0)).toEqual([30, 0, 0, 255]);
    }
  });

  it('32-bit BI_ALPHABITFIELDS after a 40-byte header', () => {
    const img = decodeBmp(makeBmp({ width: 1, height: 1, bpp: 32, compression: 6, masks: [0xff0000, 0xff00, 0xff, 0xff000000], pixel: () => 0x40112233 }));
    expect([img.channels, ...pixelsOf(img, 0, 0)]).toEqual([4, 0x11, 0x22, 0x33, 0x40]);
  });

  it('an all-ones mask is read, not looped on forever', () => {
    const img = decodeBmp(makeBmp({ width: 1, height: 1, bpp: 32, compression: 3, masks: [0xffffffff, 0xff00, 0xff], pixel: () => 0xffffffff }));
    expect(pixelsOf(img, 0, 0)).toEqual([255, 255, 255]);
  });

  it('a 1-bit BMP decodes through decodeImage to RGB', async () => {
    const img = await decodeImage(makeBmp({ width: 9, height: 2, bpp: 1, palette: grey(2), pixel: (x) => x & 1 }));
    expect([img.width, img.height, img.channels, img.original.format]).toEqual([9, 2, 3, 'bmp']);
    expect(Array.from(img.data.subarray(0, 6))).toEqual([0, 0, 0, 255, 255, 255]);
  });
});

describe('BMP decoder: refusals name what is wrong', () => {
  const ok = () => makeBmp({ width: 4, height: 2, bpp: 8, palette: grey(4), clrUsed: 4, pixel: (x) => x });
  const refuse = (buf: Buffer, re: RegExp) => {
    let err: unknown;
    try {
      decodeBmp(buf);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(BadImageError);
    expect((err as Error).message).toMatch(re);
  };

  it('RLE, unknown bit depths, masks on 24-bit, OS/2 headers', () => {
    refuse(makeBmp({ width: 2, height: 1, bpp: 8, compression: 1, palette: grey(2), pixel: () => 0 }), /compression 1 \(RLE\)/);
    refuse(makeBmp({ width: 2, height: 1, bpp: 2, palette: grey(4), pixel: () => 0 }), /2 bits per pixel/);
    refuse(makeBmp({ width: 2, height: 1, bpp: 24, compression: 3, pixel: () => [0, 0, 0] }), /bit-field masks need 16 or 32/);
    const os2 = ok();
    os2.writeUInt32LE(12, 14);
    refuse(os2, /BITMAPCOREHEADER/);
  });

  it('truncated headers, palettes and pixel rows', () => {
    const good = ok();
    refuse(good.subarray(0, 30), /truncated or unknown header/);
    refuse(good.subarray(0, 14 + 40 + 6), /truncated palette/);
    refuse(good.subarray(0, good.length - 1), /truncated pixel data/);
    refuse(makeBmp({ width: 1, height: 1, bpp: 32, compression: 3, masks: [0xff, 0xff00, 0xff0000], pixel: () => 0 }).subarray(0, 60), /truncated bit-field masks/);
  });

  it('palette indices past the palette, impossible palettes, offsets inside the headers, pixel limits', () => {
    refuse(makeBmp({ width: 2, height: 1, bpp: 8, palette: grey(2), clrUsed: 2, pixel: (x) => x * 5 }), /palette entry 5 of 2/);
    const big = ok();
    big.writeUInt32LE(300, 46);
    refuse(big, /palette of 300 colours/);
    const inside = ok();
    inside.writeUInt32LE(54, 10);
    refuse(inside, /offset 54 points inside the headers/);
    expect(() => decodeBmp(ok(), { maxPixels: 7 })).toThrow(/over the limit of 7 pixels/);
    expect(decodeBmp(ok(), { maxPixels: 8 }).width).toBe(4);
  });
});
