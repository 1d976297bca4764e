import sharp from 'sharp';
import { describe, expect, it } from 'vitest';
import { MjpegSplitter } from '../drivers/camera/mjpeg-splitter.ts';
import { MultipartParser, multipartBoundary, type MultipartPart } from '../drivers/camera/multipart.ts';
import { sample, SAMPLE_NUMBERS } from './helpers/fixtures.ts';

/** Small deterministic PRNG so chunkings are random-looking but reproducible. */
function prng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Cuts data into chunks of random sizes from 1 to maxChunk bytes. */
function randomChunks(data: Buffer, maxChunk: number, seed: number): Buffer[] {
  const rnd = prng(seed);
  const out: Buffer[] = [];
  for (let i = 0; i < data.length; ) {
    const n = 1 + Math.floor(rnd() * maxChunk);
    out.push(data.subarray(i, i + n));
    i += n;
  }
  return out;
}

function split(chunks: Buffer[], splitter = new MjpegSplitter()): Buffer[] {
  return chunks.flatMap((c) => splitter.push(c));
}

const b = (...bytes: number[]): Buffer => Buffer.from(bytes);

/** Compares frame lists by length and bytes (deep-equality on big Buffers is slow and prints megabytes). */
function expectFrames(got: Buffer[], want: Buffer[], label = ''): void {
  expect(got.map((f) => f.length), label).toEqual(want.map((f) => f.length));
  got.forEach((f, i) => expect(f.equals(want[i]!), `${label} frame ${i} bytes`).toBe(true));
}

/**
 * A structurally valid (not decodable) JPEG by hand: an APP1 segment whose payload holds FFD8 and FFD9 (as an
 * EXIF thumbnail would), a DQT, then a scan with stuffed FF00 bytes and restart markers, then EOI.
 */
function handMade(tag: number): Buffer {
  const appPayload = [0x45, 0x78, 0x69, 0x66, 0, 0, 0xff, 0xd8, 0xff, 0xd9, 0xff, 0xd9, tag];
  const app1 = [0xff, 0xe1, 0, appPayload.length + 2, ...appPayload];
  const dqt = [0xff, 0xdb, 0, 5, 1, 2, 3];
  const sos = [0xff, 0xda, 0, 8, 1, 1, 0, 0, 63, 0];
  const entropy = [0x12, 0xff, 0x00, 0x34, 0xff, 0xd0, 0x56, 0xff, 0x00, 0xff, 0xd7, tag, 0xff, 0xff, 0xd1, 0x78];
  return b(0xff, 0xd8, ...app1, ...dqt, ...sos, ...entropy, 0xff, 0xd9);
}

/** Wraps a thumbnail JPEG in an EXIF APP1 segment (TIFF IFD1 JPEGInterchangeFormat) and inserts it after SOI. */
function withExifThumbnail(main: Buffer, thumb: Buffer): Buffer {
  const tiff = Buffer.alloc(8 + 6 + 2 + 24 + 4);
  tiff.write('II', 0, 'latin1');
  tiff.writeUInt16LE(42, 2);
  tiff.writeUInt32LE(8, 4); // IFD0 at 8
  tiff.writeUInt16LE(0, 8); // IFD0: no entries
  tiff.writeUInt32LE(14, 10); // next IFD (IFD1) at 14
  tiff.writeUInt16LE(2, 14); // IFD1: two entries
  const thumbOffset = tiff.length;
  tiff.writeUInt16LE(0x0201, 16); // JPEGInterchangeFormat
  tiff.writeUInt16LE(4, 18); // LONG
  tiff.writeUInt32LE(1, 20);
  tiff.writeUInt32LE(thumbOffset, 24);
  tiff.writeUInt16LE(0x0202, 28); // JPEGInterchangeFormatLength
  tiff.writeUInt16LE(4, 30);
  tiff.writeUInt32LE(1, 32);
  tiff.writeUInt32LE(thumb.length, 36);
  tiff.writeUInt32LE(0, 40); // no more IFDs
  const payload = Buffer.concat([Buffer.from('Exif\0\0', 'latin1'), tiff, thumb]);
  if (payload.length + 2 > 0xffff) throw new Error('thumbnail too large for one APP1 segment');
  const header = Buffer.alloc(4);
  header.writeUInt16BE(0xffe1, 0);
  header.writeUInt16BE(payload.length + 2, 2);
  return Buffer.concat([main.subarray(0, 2), header, payload, main.subarray(2)]);
}

async function noiseJpeg(width: number, height: number, seed: number, options: sharp.JpegOptions = {}): Promise<Buffer> {
  const rnd = prng(seed);
  const raw = Buffer.alloc(width * height * 3);
  for (let i = 0; i < raw.length; i++) raw[i] = Math.floor(rnd() * 256);
  return sharp(raw, { raw: { width, height, channels: 3 } }).jpeg(options).toBuffer();
}

describe('MjpegSplitter', () => {
  it('splits hand-made frames at every possible chunk boundary, ignoring FFD9 in segments and FF00/RSTn in scans', () => {
    const frames = [handMade(1), handMade(2), handMade(3)];
    const garbage = b(0x00, 0xff, 0x12, 0xff, 0xff, 0xd9, 0x55);
    const stream = Buffer.concat([garbage, frames[0]!, frames[1]!, garbage, frames[2]!, garbage]);
    // Two cuts anywhere: covers every split of every marker and length field.
    for (let i = 0; i <= stream.length; i++) {
      for (let j = i; j <= stream.length; j += 7) {
        const got = split([stream.subarray(0, i), stream.subarray(i, j), stream.subarray(j)]);
        expect(got, `cuts at ${i},${j}`).toEqual(frames);
      }
    }
    const bytewise = new MjpegSplitter();
    expect(split([...stream].map((x) => b(x)), bytewise)).toEqual(frames);
    expect(bytewise.stats).toMatchObject({ frames: 3, corrupt: 0, oversize: 0 });
    expect(bytewise.stats.garbageBytes).toBe(3 * garbage.length);
  });

  it('splits the real sample photos, fed in random chunks and one byte at a time, byte for byte', () => {
    const photos = SAMPLE_NUMBERS.map((i) => sample(i));
    const stream = Buffer.concat(photos.flatMap((p) => [p, Buffer.from('\r\n--junk--\r\n')]));
    for (const [maxChunk, seed] of [[7, 1], [4096, 2], [65536, 3], [300_000, 4]] as const) {
      expectFrames(split(randomChunks(stream, maxChunk, seed)), photos, `chunks up to ${maxChunk}`);
    }
    const first = photos[0]!;
    const bytewise: Buffer[] = [];
    for (let i = 0; i < first.length; i++) bytewise.push(first.subarray(i, i + 1));
    expectFrames(split(bytewise), [first], 'one byte at a time');
  });

  it('keeps an image whose EXIF thumbnail (a nested JPEG with its own EOI) comes first, whole', async () => {
    // face-api's samples carry EXIF but no thumbnail, so build one the way cameras write it.
    for (const i of SAMPLE_NUMBERS) expect(sample(i).indexOf(b(0xff, 0xd8), 2), `sample${i} nested SOI`).toBe(-1);
    const thumb = await noiseJpeg(64, 48, 7);
    const main = await noiseJpeg(320, 240, 8);
    const photo = withExifThumbnail(main, thumb);
    const meta = await sharp(photo).metadata();
    expect(meta).toMatchObject({ width: 320, height: 240, format: 'jpeg' });
    expect(meta.exif?.length).toBeGreaterThan(thumb.length);
    // A naive "first FFD9 after FFD8" splitter would cut inside the thumbnail:
    const firstEoi = photo.indexOf(b(0xff, 0xd9));
    expect(firstEoi + 2).toBeLessThan(photo.length);

    const stream = Buffer.concat([photo, photo, b(0x00, 0x00), photo]);
    for (const seed of [1, 2, 3]) {
      expectFrames(split(randomChunks(stream, 1000, seed)), [photo, photo, photo]);
    }
    const decoded = await sharp(split([photo])[0]!).raw().toBuffer({ resolveWithObject: true });
    expect(decoded.info).toMatchObject({ width: 320, height: 240 });
  });

  it('handles progressive JPEGs (tables between several scans)', async () => {
    const prog = await noiseJpeg(200, 150, 9, { progressive: true });
    const plain = await noiseJpeg(200, 150, 10);
    expect(prog.subarray(2).indexOf(b(0xff, 0xda)) !== prog.subarray(2).lastIndexOf(b(0xff, 0xda))).toBe(true); // several SOS
    expectFrames(split(randomChunks(Buffer.concat([prog, plain, prog]), 333, 5)), [prog, plain, prog]);
  });

  it('drops and reports a frame over the size bound, then carries on', () => {
    const drops: Array<[string, number]> = [];
    const splitter = new MjpegSplitter({ maxFrameBytes: 160_000, onDrop: (reason, bytes) => drops.push([reason, bytes]) });
    const small = sample(1); // 144516 bytes
    const big = sample(6); // 302445 bytes
    const got = split(randomChunks(Buffer.concat([small, big, small, big]), 8192, 6), splitter);
    expectFrames(got, [small, small]);
    expect(splitter.stats).toMatchObject({ frames: 2, oversize: 2 });
    expect(drops).toEqual([
      ['oversize', big.length],
      ['oversize', big.length],
    ]);
  });

  it('abandons a truncated frame and resynchronises on the next SOI', () => {
    const a = sample(2);
    const c = sample(3);
    const cutInScan = a.subarray(0, Math.floor(a.length * 0.6));
    const splitter = new MjpegSplitter();
    expectFrames(split(randomChunks(Buffer.concat([cutInScan, c, a]), 5000, 7), splitter), [c, a]);
    expect(splitter.stats.corrupt).toBe(1);

    // Cut inside a header segment: the bogus length may swallow the start of the next frame, never yield junk.
    const cutInHeader = a.subarray(0, 30);
    const got = split(randomChunks(Buffer.concat([cutInHeader, c, a, c]), 5000, 8));
    for (const f of got) expect([a, c].some((x) => x.equals(f))).toBe(true);
    expectFrames(got.slice(-2), [a, c]);
  });

  it('does not emit SOI ... EOI without image data, and survives random garbage', () => {
    const splitter = new MjpegSplitter();
    expect(splitter.push(b(0xff, 0xd8, 0xff, 0xd9))).toEqual([]);
    expect(splitter.stats.corrupt).toBe(1);
    const rnd = prng(11);
    const junk = Buffer.alloc(200_000);
    for (let i = 0; i < junk.length; i++) junk[i] = rnd() < 0.05 ? 0xff : Math.floor(rnd() * 256);
    const s2 = new MjpegSplitter({ maxFrameBytes: 400_000 });
    split(randomChunks(junk, 4096, 12), s2);
    // Junk can leave the splitter inside a bogus segment (up to 64 KiB to skip) or scan; within a frame or two
    // of real data it is back in step, and it never grows past the bound meanwhile.
    const photo = sample(4);
    const out = split(randomChunks(Buffer.concat([photo, photo, photo]), 4096, 13), s2);
    expect(out.length).toBeGreaterThanOrEqual(2);
    expectFrames(out.slice(-2), [photo, photo]);
  });
});

describe('multipartBoundary', () => {
  it('reads the boundary parameter of a multipart type only', () => {
    expect(multipartBoundary('multipart/x-mixed-replace; boundary=frame')).toBe('frame');
    expect(multipartBoundary('multipart/x-mixed-replace;boundary="--my boundary"')).toBe('--my boundary');
    expect(multipartBoundary('Multipart/X-Mixed-Replace; charset=x; Boundary=abc')).toBe('abc');
    expect(multipartBoundary('multipart/x-mixed-replace')).toBeNull();
    expect(multipartBoundary('image/jpeg; boundary=x')).toBeNull();
    expect(multipartBoundary(undefined)).toBeNull();
  });
});

describe('MultipartParser', () => {
  const bodies = [Buffer.from('first body'), Buffer.from('second --frame mid-line\r\n--frameX not a delimiter\r\n--frame-y neither\r\nstill'), Buffer.from('x')];

  function stream(opts: { contentLength: boolean; eol?: string; delimiter?: string; close?: boolean }): Buffer {
    const eol = opts.eol ?? '\r\n';
    const delim = opts.delimiter ?? '--frame';
    const parts: Buffer[] = [Buffer.from(`preamble junk${eol}`)];
    for (const body of bodies) {
      const cl = opts.contentLength ? `Content-Length: ${body.length}${eol}` : '';
      parts.push(Buffer.from(`${delim}${eol}Content-Type: image/jpeg${eol}${cl}${eol}`), body, Buffer.from(eol));
    }
    if (opts.close) parts.push(Buffer.from(`${delim}--${eol}`));
    return Buffer.concat(parts);
  }

  function parseAll(chunks: Buffer[], boundary = 'frame'): { parts: MultipartPart[]; parser: MultipartParser } {
    const parser = new MultipartParser(boundary);
    return { parts: chunks.flatMap((c) => parser.push(c)), parser };
  }

  it('uses Content-Length when given (body bytes are never searched), at every split point', () => {
    const s = stream({ contentLength: true, close: true });
    for (let i = 0; i <= s.length; i++) {
      const { parts, parser } = parseAll([s.subarray(0, i), s.subarray(i)]);
      expect(parts.map((p) => p.body), `split at ${i}`).toEqual(bodies);
      expect(parts[0]!.headers).toEqual({ 'content-type': 'image/jpeg', 'content-length': '10' });
      expect(parser.done).toBe(true);
    }
  });

  it('finds the boundary when there is no Content-Length (only at a line start), at every split point', () => {
    // The middle body holds "--frame" mid-line and at line starts followed by other text: not delimiters. The last part only ends at the next one.
    const s = stream({ contentLength: false });
    const tail = Buffer.from('--frame\r\n');
    for (let i = 0; i <= s.length + tail.length; i++) {
      const all = Buffer.concat([s, tail]);
      const { parts } = parseAll([all.subarray(0, i), all.subarray(i)]);
      expect(parts.map((p) => p.body.toString()), `split at ${i}`).toEqual(bodies.map((x) => x.toString()));
    }
    expect(parseAll([...stream({ contentLength: false, close: true })].map((x) => Buffer.from([x]))).parts.map((p) => p.body)).toEqual(bodies);
  });

  it('accepts LF line ends and a boundary parameter that already starts with "--"', () => {
    const lf = stream({ contentLength: false, eol: '\n', close: true });
    expect(parseAll(randomChunks(lf, 5, 1)).parts.map((p) => p.body.toString())).toEqual(bodies.map((x) => x.toString()));
    // boundary="--frame" with delimiter lines "--frame" (common in cameras) and "----frame" (the RFC reading).
    for (const delimiter of ['--frame', '----frame']) {
      for (const contentLength of [true, false]) {
        const s = stream({ contentLength, delimiter, close: true });
        const { parts, parser } = parseAll(randomChunks(s, 9, 2), '--frame');
        expect(parts.map((p) => p.body.toString()), `${delimiter} ${contentLength}`).toEqual(bodies.map((x) => x.toString()));
        expect(parser.done).toBe(true);
      }
    }
  });

  it('carries real JPEG parts through intact', () => {
    const photos = [sample(1), sample(5)];
    const s = Buffer.concat(
      photos.flatMap((p, i) => [
        Buffer.from(`--bound\r\nContent-Type: image/jpeg\r\n${i === 0 ? `Content-Length: ${p.length}\r\n` : ''}\r\n`),
        p,
        Buffer.from('\r\n'),
      ]),
    );
    const { parts } = parseAll(randomChunks(Buffer.concat([s, Buffer.from('--bound\r\n')]), 10_000, 3), 'bound');
    expectFrames(parts.map((p) => p.body), photos);
  });

  it('skips a part over the size bound, with or without Content-Length, and delivers the next', () => {
    const big = Buffer.alloc(5000, 0x41);
    const small = Buffer.from('small');
    const dropped: number[] = [];
    for (const withLength of [true, false]) {
      const parser = new MultipartParser('b', { maxPartBytes: 1000, onDrop: (_r, n) => dropped.push(n) });
      const part = (body: Buffer): Buffer =>
        Buffer.concat([Buffer.from(`--b\r\n${withLength ? `Content-Length: ${body.length}\r\n` : ''}\r\n`), body, Buffer.from('\r\n')]);
      const s = Buffer.concat([part(big), part(small), Buffer.from('--b--\r\n')]);
      const parts = randomChunks(s, 300, 4).flatMap((c) => parser.push(c));
      expect(parts.map((p) => p.body.toString())).toEqual(['small']);
      expect(parser.stats).toMatchObject({ parts: 1, oversize: 1 });
    }
    expect(dropped).toEqual([5000, 5000]);
  });
});
