/**
 * The `biokiosk-face/1` template: a versioned binary record of one face embedding and the model that made it, so
 * a verifier can refuse a template made by a model it does not trust.
 *
 *   offset  size  field
 *   0       4     magic "BKFC"
 *   4       1     format version (1)
 *   5       1     quality (0-100)
 *   6       2     embedding dimension n (uint16 LE)
 *   8       32    sha256 of the ONNX model that made the embedding
 *   40      1     model name length m
 *   41      m     model name (UTF-8)
 *   41+m    4n    embedding, float32 LE, L2-normalised
 */
import { BadTemplateError } from '../../protocol/errors.ts';

export const FACE_TEMPLATE_FORMAT = 'biokiosk-face/1';
const MAGIC = [0x42, 0x4b, 0x46, 0x43]; // "BKFC"
const VERSION = 1;
const MAX_DIM = 4096;

export interface FaceTemplate {
  format: typeof FACE_TEMPLATE_FORMAT;
  model: { name: string; sha256: string };
  quality: number;
  embedding: Float32Array;
}

export function encodeFaceTemplate(t: Omit<FaceTemplate, 'format'>): Uint8Array {
  const name = new TextEncoder().encode(t.model.name);
  if (name.length > 255) throw new BadTemplateError('model name longer than 255 bytes');
  if (!/^[0-9a-f]{64}$/.test(t.model.sha256)) throw new BadTemplateError('model sha256 must be 64 lowercase hex digits');
  const n = t.embedding.length;
  if (n === 0 || n > MAX_DIM) throw new BadTemplateError(`embedding dimension ${n} out of range`);
  const out = new Uint8Array(41 + name.length + 4 * n);
  const view = new DataView(out.buffer);
  out.set(MAGIC, 0);
  out[4] = VERSION;
  out[5] = Math.max(0, Math.min(100, Math.round(t.quality)));
  view.setUint16(6, n, true);
  out.set(Buffer.from(t.model.sha256, 'hex'), 8);
  out[40] = name.length;
  out.set(name, 41);
  const base = 41 + name.length;
  for (let i = 0; i < n; i++) view.setFloat32(base + 4 * i, t.embedding[i]!, true);
  return out;
}

export function decodeFaceTemplate(bytes: Uint8Array): FaceTemplate {
  if (bytes.length < 41) throw new BadTemplateError(`face template too short (${bytes.length} bytes)`);
  if (!MAGIC.every((b, i) => bytes[i] === b)) throw new BadTemplateError('not a biokiosk face template (bad magic)');
  if (bytes[4] !== VERSION) throw new BadTemplateError(`unsupported face template version ${bytes[4]}`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const n = view.getUint16(6, true);
  const nameLen = bytes[40]!;
  const expected = 41 + nameLen + 4 * n;
  if (n === 0 || bytes.length !== expected) throw new BadTemplateError(`face template length ${bytes.length} does not match its header (expected ${expected})`);
  const embedding = new Float32Array(n);
  const base = 41 + nameLen;
  for (let i = 0; i < n; i++) {
    const v = view.getFloat32(base + 4 * i, true);
    if (!Number.isFinite(v)) throw new BadTemplateError(`face template embedding value ${i} is not finite`);
    embedding[i] = v;
  }
  return {
    format: FACE_TEMPLATE_FORMAT,
    model: { name: new TextDecoder('utf-8', { fatal: true }).decode(bytes.subarray(41, 41 + nameLen)), sha256: Buffer.from(bytes.subarray(8, 40)).toString('hex') },
    quality: bytes[5]!,
    embedding,
  };
}
