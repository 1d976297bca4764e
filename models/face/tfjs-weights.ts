/**
 * Reads TF.js "weights manifest" models (a JSON manifest plus binary shards), as shipped by @vladmandic/face-api,
 * into named float32 tensors, undoing the uint8/uint16/float16 quantisation the manifest declares.
 */
import { readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';

export interface NamedTensor {
  name: string;
  shape: number[];
  data: Float32Array;
}

interface ManifestWeight {
  name: string;
  shape: number[];
  dtype: string;
  quantization?: { dtype: string; scale?: number; min?: number };
}

interface ManifestGroup {
  paths: string[];
  weights: ManifestWeight[];
}

export async function readTfjsWeights(manifestPath: string): Promise<Map<string, NamedTensor>> {
  const groups = JSON.parse(await readFile(manifestPath, 'utf8')) as ManifestGroup[];
  const out = new Map<string, NamedTensor>();
  for (const group of groups) {
    const shards = await Promise.all(group.paths.map((p) => readFile(join(dirname(manifestPath), p))));
    const buf = Buffer.concat(shards);
    let offset = 0;
    for (const w of group.weights) {
      const count = w.shape.reduce((a, b) => a * b, 1);
      const { data, bytes } = decodeWeight(buf, offset, count, w);
      offset += bytes;
      out.set(w.name, { name: w.name, shape: w.shape, data });
    }
    if (offset !== buf.length) throw new Error(`${manifestPath}: manifest describes ${offset} bytes, shards hold ${buf.length}`);
  }
  return out;
}

function decodeWeight(buf: Buffer, offset: number, count: number, w: ManifestWeight): { data: Float32Array; bytes: number } {
  const q = w.quantization;
  const data = new Float32Array(count);
  if (!q) {
    if (w.dtype !== 'float32') throw new Error(`weight ${w.name}: unsupported dtype ${w.dtype}`);
    for (let i = 0; i < count; i++) data[i] = buf.readFloatLE(offset + 4 * i);
    return { data, bytes: 4 * count };
  }
  if (q.dtype === 'uint8' || q.dtype === 'uint16') {
    const scale = q.scale ?? 1;
    const min = q.min ?? 0;
    const size = q.dtype === 'uint8' ? 1 : 2;
    for (let i = 0; i < count; i++) {
      const v = size === 1 ? buf.readUInt8(offset + i) : buf.readUInt16LE(offset + 2 * i);
      // Same arithmetic as TF.js's dequantisation (float32 result of min + scale * q).
      data[i] = v * scale + min;
    }
    return { data, bytes: size * count };
  }
  if (q.dtype === 'float16') {
    for (let i = 0; i < count; i++) data[i] = halfToFloat(buf.readUInt16LE(offset + 2 * i));
    return { data, bytes: 2 * count };
  }
  throw new Error(`weight ${w.name}: unsupported quantisation ${q.dtype}`);
}

function halfToFloat(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >> 10) & 0x1f;
  const frac = h & 0x3ff;
  if (exp === 0) return sign * 2 ** -14 * (frac / 1024);
  if (exp === 31) return frac ? NaN : sign * Infinity;
  return sign * 2 ** (exp - 15) * (1 + frac / 1024);
}

/** TF.js conv filters are [h, w, in, out]; ONNX wants [out, in, h, w]. */
export function hwioToOihw(t: NamedTensor): { dims: number[]; data: Float32Array } {
  const [h, w, i, o] = t.shape as [number, number, number, number];
  const out = new Float32Array(t.data.length);
  for (let y = 0; y < h; y++)
    for (let x = 0; x < w; x++)
      for (let c = 0; c < i; c++)
        for (let k = 0; k < o; k++) out[((k * i + c) * h + y) * w + x] = t.data[((y * w + x) * i + c) * o + k]!;
  return { dims: [o, i, h, w], data: out };
}

/** TF.js depthwise filters are [h, w, in, multiplier=1]; ONNX grouped conv wants [in, 1, h, w]. */
export function depthwiseToOihw(t: NamedTensor): { dims: number[]; data: Float32Array } {
  const [h, w, c, m] = t.shape as [number, number, number, number];
  if (m !== 1) throw new Error(`${t.name}: channel multiplier ${m} not supported`);
  const out = new Float32Array(t.data.length);
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) for (let k = 0; k < c; k++) out[(k * h + y) * w + x] = t.data[(y * w + x) * c + k]!;
  return { dims: [c, 1, h, w], data: out };
}
