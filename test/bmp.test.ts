import { describe, expect, it } from 'vitest';
import { decodeBmp } from '../models/common/bmp.ts';
import { decodeImage } from '../models/common/image.ts';
import { BadImageError } from '../protocol/errors.ts';
import { bmp } from './helpers/bmp.ts';

describe('BMP decoder', () => {
  const colour = (x: number, y: number): [number, number, number] => [x * 40, y * 50, (x + y) * 10];

  it('reads 24-bit bottom-up and top-down files with padded rows', () => {
    for (const topDown of [false, true]) {
      const img = decodeBmp(bmp(5, 3, colour, { topDown }));
      expect([img.width, img.height, img.channels]).toEqual([5, 3, 3]);
      for (let y = 0; y < 3; y++) for (let x = 0; x < 5; x++) expect(Array.from(img.data.subarray((y * 5 + x) * 3, (y * 5 + x) * 3 + 3))).toEqual(colour(x, y));
    }
  });

  it('reads 8-bit grey-palette files as one channel', () => {
    const img = decodeBmp(bmp(7, 2, (x, y) => [x * 30 + y, 0, 0], { bpp: 8 }));
    expect(img.channels).toBe(1);
    expect(Array.from(img.data)).toEqual([0, 30, 60, 90, 120, 150, 180, 1, 31, 61, 91, 121, 151, 181]);
  });

  it('is what decodeImage uses for BMP input', async () => {
    const img = await decodeImage(bmp(6, 4, colour));
    expect([img.width, img.height, img.original.format]).toEqual([6, 4, 'bmp']);
    expect(Array.from(img.data.subarray(0, 3))).toEqual(colour(0, 0));
  });

  it('refuses truncated, compressed and malformed files with a reason', () => {
    const good = bmp(4, 4, colour);
    expect(() => decodeBmp(good.subarray(0, good.length - 10))).toThrow(/truncated pixel data/);
    const rle = Buffer.from(good);
    rle.writeUInt32LE(1, 30);
    expect(() => decodeBmp(rle)).toThrow(/compression 1/);
    const huge = Buffer.from(good);
    huge.writeInt32LE(100_000, 18);
    expect(() => decodeBmp(huge)).toThrow(/bad size/);
    expect(() => decodeBmp(Buffer.from('BMxx'))).toThrow(BadImageError);
  });
});
