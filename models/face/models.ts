/**
 * Loads the face nets listed in models/manifest.json, refusing any file whose sha256 differs from the manifest
 * (a template names the model that made it, so the file must be exactly that model).
 */
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type * as ort from 'onnxruntime-node';
import { loadedOnnxRuntime, onnxRuntime } from '../onnx/runtime.ts';
import { BiokioskError } from '../../protocol/errors.ts';
import { PACKAGE_ROOT } from '../../protocol/runtime.ts';

export const MODELS_DIR = join(PACKAGE_ROOT, 'models');

export interface LoadedNet {
  name: string;
  sha256: string;
  session: ort.InferenceSession;
}

interface ManifestFile {
  models: Record<string, { file: string; sha256: string; modality?: string }>;
}

export async function readManifest(modelsDir = MODELS_DIR): Promise<ManifestFile> {
  const path = join(modelsDir, 'manifest.json');
  try {
    return JSON.parse(await readFile(path, 'utf8')) as ManifestFile;
  } catch (e) {
    throw new BiokioskError('ModelMissing', `cannot read the model manifest ${path}; run \`npm run models\``, { kind: 'internal', cause: e });
  }
}

export async function loadNet(name: string, options: { modelsDir?: string; threads?: number; optimization?: 'disabled' | 'basic' | 'extended' | 'all'; spinning?: boolean } = {}): Promise<LoadedNet> {
  const modelsDir = options.modelsDir ?? MODELS_DIR;
  const entry = (await readManifest(modelsDir)).models[name];
  if (!entry) throw new BiokioskError('ModelMissing', `model ${name} is not in ${join(modelsDir, 'manifest.json')}`, { kind: 'internal' });
  const path = join(modelsDir, entry.file);
  let bytes: Buffer;
  try {
    bytes = await readFile(path);
  } catch (e) {
    throw new BiokioskError('ModelMissing', `cannot read model file ${path}; run \`npm run models\``, { kind: 'internal', cause: e });
  }
  const sha256 = createHash('sha256').update(bytes).digest('hex');
  if (sha256 !== entry.sha256) {
    throw new BiokioskError('ModelTampered', `model file ${path} has sha256 ${sha256}, the manifest says ${entry.sha256}`, { kind: 'internal' });
  }
  const session = await (await onnxRuntime()).InferenceSession.create(bytes, {
    intraOpNumThreads: options.threads ?? 0,
    interOpNumThreads: 1,
    executionMode: 'sequential',
    graphOptimizationLevel: options.optimization ?? 'all',
    ...(options.spinning === false ? { extra: { session: { intra_op: { allow_spinning: '0' } } } } : {}),
  });
  return { name, sha256, session };
}

/** Runs a single-input, single-output net on NHWC float pixels. */
export async function runNet(net: LoadedNet, pixels: Float32Array, height: number, width: number): Promise<{ data: Float32Array; dims: readonly number[] }> {
  const input = new (loadedOnnxRuntime().Tensor)('float32', pixels, [1, height, width, 3]);
  const out = await net.session.run({ [net.session.inputNames[0]!]: input });
  const t = out[net.session.outputNames[0]!]!;
  return { data: t.data as Float32Array, dims: t.dims };
}
