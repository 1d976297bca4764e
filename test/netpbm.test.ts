import { describe, expect, it } from 'vitest';
import { decodeImage } from '../models/common/image.ts';
import { decodeNetpbm, isNetpbm } from '../models/common/netpbm.ts';
import { BadImageError } from '../protocol/errors.ts';

const ascii = (s: string) => new Uint8Array(Buffer.from(s, 'latin1'));
const concat = (...parts: Uint8Array[]) => new Uint8Array(Buffer.concat(parts));

describe('Netpbm decoder', () => {
  it('reads plain and raw PGM with comments anywhere in the header', () => {
    const plain = decodeNetpbm(ascii('P2\n# made by hand\n3 2 # size\n255\n0 10 20\n30 40 255\n'));
    expect([plain.width, plain.height, plain.channels]).toEqual([3, 2, 1]);
    expect(Array.from(plain.data)).toEqual([0, 10, 20, 30, 40, 255]);
    const raw = decodeNetpbm(concat(ascii('P5 3 2\n#c\n255\n'), Uint8Array.of(0, 10, 20, 30, 40, 255)));
    expect(Array.from(raw.data)).toEqual(Array.from(plain.data));
  });

  it('scales any maxval to 0-255, 16-bit samples most significant byte first', () => {
    expect(Array.from(decodeNetpbm(ascii('P2 4 1 15 0 5 10 15')).data)).toEqual([0, 85, 170, 255]);
    const wide = decodeNetpbm(concat(ascii('P5 2 1 65535\n'), Uint8Array.of(0x80, 0x00, 0xff, 0xff)));
    expect(Array.from(wide.data)).toEqual([128, 255]);
  });

  it('reads PPM (plain and raw) as three channels', () => {
    const rgb = [255, 0, 0, 0, 255, 0, 0, 0, 255, 9, 8, 7];
    for (const bytes of [ascii(`P3 2 2 255 ${rgb.join(' ')}`), concat(ascii('P6\n2 2\n255\n'), Uint8Array.from(rgb))]) {
      const img = decodeNetpbm(bytes);
      expect([img.width, img.height, img.channels]).toEqual([2, 2, 3]);
      expect(Array.from(img.data)).toEqual(rgb);
    }
  });

  it('reads PBM (1 is black), raw rows padded to whole bytes', () => {
    expect(Array.from(decodeNetpbm(ascii('P1 3 2 1 0 1\n011')).data)).toEqual([0, 255, 0, 255, 0, 0]);
    const raw = decodeNetpbm(concat(ascii('P4 10 2\n'), Uint8Array.of(0b10000000, 0b01000000, 0b00000000, 0b11000000)));
    expect(Array.from(raw.data)).toEqual([0, 255, 255, 255, 255, 255, 255, 255, 255, 0, ...Array(8).fill(255), 0, 0]);
  });

  it('gives the first image of a multi-image file', () => {
    const two = concat(ascii('P5 1 1 255\n'), Uint8Array.of(7), ascii('P5 1 1 255\n'), Uint8Array.of(9));
    expect(Array.from(decodeNetpbm(two).data)).toEqual([7]);
  });

  it('refuses truncated, oversized and malformed files with a reason', () => {
    expect(() => decodeNetpbm(concat(ascii('P5 4 4 255\n'), new Uint8Array(10)))).toThrow(/truncated pixel data/);
    expect(() => decodeNetpbm(ascii('P2 2 2 255 1 2 3'))).toThrow(/truncated/);
    expect(() => decodeNetpbm(ascii('P2 2 1 100 50 101'))).toThrow(/above maxval 100/);
    expect(() => decodeNetpbm(ascii('P5 2 x 255\n'))).toThrow(/expected a number for height/);
    expect(() => decodeNetpbm(ascii('P5 0 3 255\n'))).toThrow(/bad size/);
    expect(() => decodeNetpbm(ascii('P5 3 3 70000\n'))).toThrow(/maxval 70000/);
    expect(() => decodeNetpbm(ascii('P5 2000 2000 255\n'), { maxPixels: 1000 })).toThrow(/over the limit/);
    expect(() => decodeNetpbm(ascii('P7\nWIDTH 1\n'))).toThrow(/PAM/);
    expect(() => decodeNetpbm(ascii('GIF89a'))).toThrow(BadImageError);
    expect(isNetpbm(ascii('P5 1 1 255\n'))).toBe(true);
    expect(isNetpbm(ascii('Pizza'))).toBe(false);
  });

  it('is what decodeImage uses for PGM and PPM input', async () => {
    const pgm = await decodeImage(concat(ascii('P5 4 2 255\n'), Uint8Array.of(0, 50, 100, 150, 200, 250, 255, 1)));
    expect([pgm.width, pgm.height, pgm.original.format]).toEqual([4, 2, 'pgm']);
    expect(Array.from(pgm.data.subarray(0, 6))).toEqual([0, 0, 0, 50, 50, 50]);
    const ppm = await decodeImage(ascii('P3 1 1 255 1 2 3'));
    expect([ppm.original.format, ...ppm.data]).toEqual(['ppm', 1, 2, 3]);
    await expect(decodeImage(ascii('P5 4 4 255\n'))).rejects.toThrow(/Netpbm: truncated/);
  });
});
