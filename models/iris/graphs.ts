/** The iris extractor's ONNX session (checked against models/manifest.json by loadNet) and the call into it. */
import { loadedOnnxRuntime } from '../onnx/runtime.ts';
import { loadNet, type LoadedNet } from '../face/models.ts';
import { PAD_COLS, PAD_ROWS } from './build.ts';
import { IRIS_PARAMS } from './params.ts';

export async function loadIrisGraph(options: { modelsDir?: string; threads?: number } = {}): Promise<LoadedNet> {
  // One small Conv pair: more than one thread only adds hand-over cost.
  return loadNet('iris_loggabor', { ...options, threads: options.threads ?? 1 });
}

/** Filter responses [re | im], each codeRings x codeCols, of a padded polar image. */
export async function runFilter(net: LoadedNet, padded: Float32Array): Promise<{ re: Float32Array; im: Float32Array }> {
  const out = await net.session.run({ image: new (loadedOnnxRuntime().Tensor)('float32', padded, [1, 1, PAD_ROWS, PAD_COLS]) });
  const data = out.responses!.data as Float32Array;
  const n = IRIS_PARAMS.codeRings * IRIS_PARAMS.codeCols;
  if (data.length !== 2 * n) throw new Error(`iris_loggabor gave ${data.length} values, expected ${2 * n}`);
  return { re: data.subarray(0, n), im: data.subarray(n) };
}
