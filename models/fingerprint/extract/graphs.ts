/**
 * The extractor's ONNX sessions (built by models/fingerprint/build.ts, checked against models/manifest.json by
 * loadNet) and the two calls into them. Inputs and outputs are NCHW float32.
 */
import { loadedOnnxRuntime } from '../../onnx/runtime.ts';
import { loadNet, type LoadedNet } from '../../face/models.ts';
import { GABOR } from '../build.ts';
import { PARAMS } from './params.ts';

export interface FingerprintGraphs {
  orientation: LoadedNet;
  gabor: LoadedNet;
}

export async function loadFingerprintGraphs(options: { modelsDir?: string; threads?: number } = {}): Promise<FingerprintGraphs> {
  // onnxruntime's full optimisation rewrites the orientation graph's many small convolutions and element-wise ops into
  // its blocked (NCHWc) layout, with a reorder around each: several times slower than the graph as written. The
  // Gabor bank's two large convolutions gain from that layout, so it keeps the full level.
  // The pool's threads must not spin between runs: the JavaScript stages between the graph runs share the cores with
  // them, and spinning threads took those cores (every stage slowed, not only the graphs).
  const shared = { ...options, spinning: false };
  const [orientation, gabor] = await Promise.all([loadNet('fp_orientation', { ...shared, optimization: 'basic' }), loadNet('fp_gabor', shared)]);
  return { orientation, gabor };
}

/** Orientation field of a [0, 1] gray image: channels [U, V, coarse U, coarse V] at half resolution, ceil(width/2) x ceil(height/2). */
export async function runOrientation(net: LoadedNet, image: Float32Array, width: number, height: number): Promise<{ data: Float32Array; width: number; height: number }> {
  const out = await net.session.run({ image: new (loadedOnnxRuntime().Tensor)('float32', image, [1, 1, height, width]) });
  const field = out.field!;
  const [, , h, w] = field.dims as number[];
  if (w !== Math.ceil(width / 2) || h !== Math.ceil(height / 2)) throw new Error(`fp_orientation gave a ${w}x${h} field for a ${width}x${height} image`);
  return { data: field.data as Float32Array, width: w, height: h };
}

/**
 * Runs the Gabor bank over horizontal strips (with a halo of the kernel radius) and hands each strip's responses
 * to `consume(responses, stripTop, stripRows, haloTop)`: the bank's K*F channels for rows [stripTop, stripTop+rows)
 * start at row `haloTop` of the strip tensor. Strips keep the K*F-channel tensor small on large images.
 */
export async function runGaborStrips(
  net: LoadedNet,
  image: Float32Array,
  width: number,
  height: number,
  consume: (responses: Float32Array, stripHeight: number, top: number, rows: number, haloTop: number) => void,
): Promise<void> {
  const channels = GABOR.orientations * GABOR.periods.length;
  const halo = GABOR.radius;
  const rowsPerStrip = Math.max(16, Math.floor(PARAMS.gaborStripPixels / (width * Math.max(1, channels / 8))));
  for (let top = 0; top < height; top += rowsPerStrip) {
    const rows = Math.min(rowsPerStrip, height - top);
    const from = Math.max(0, top - halo);
    const to = Math.min(height, top + rows + halo);
    const strip = from === 0 && to === height ? image : image.subarray(from * width, to * width);
    const out = await net.session.run({ image: new (loadedOnnxRuntime().Tensor)('float32', strip, [1, 1, to - from, width]) });
    consume(out.responses!.data as Float32Array, to - from, top, rows, top - from);
  }
}
