/** Writes a BMP by hand: 24-bit or 8-bit grey, bottom-up unless topDown. */
export function bmp(width: number, height: number, pixel: (x: number, y: number) => [number, number, number], opts: { bpp?: 8 | 24; topDown?: boolean } = {}): Buffer {
  const bpp = opts.bpp ?? 24;
  const stride = Math.ceil((width * bpp) / 32) * 4;
  const paletteBytes = bpp === 8 ? 256 * 4 : 0;
  const offset = 14 + 40 + paletteBytes;
  const b = Buffer.alloc(offset + stride * height);
  b.write('BM', 0, 'latin1');
  b.writeUInt32LE(b.length, 2);
  b.writeUInt32LE(offset, 10);
  b.writeUInt32LE(40, 14);
  b.writeInt32LE(width, 18);
  b.writeInt32LE(opts.topDown ? -height : height, 22);
  b.writeUInt16LE(1, 26);
  b.writeUInt16LE(bpp, 28);
  if (bpp === 8) for (let i = 0; i < 256; i++) b.writeUInt32LE(i * 0x010101, 54 + i * 4);
  for (let y = 0; y < height; y++) {
    const row = offset + (opts.topDown ? y : height - 1 - y) * stride;
    for (let x = 0; x < width; x++) {
      const [r, g, bl] = pixel(x, y);
      if (bpp === 8) b[row + x] = r;
      else b.set([bl, g, r], row + x * 3);
    }
  }
  return b;
}
