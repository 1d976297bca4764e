/**
 * The fingerprint extractor's convolution-heavy stages as ONNX graphs, built from code (no weights to download):
 *
 * - `fp_orientation`: Sobel gradients -> structure tensor (gxx - gyy, 2 gxy, gxx + gyy) -> Gaussian smoothing
 *   (sigma ORIENTATION.tensorSigma) -> coherence and the coherence-weighted doubled-angle vector -> a second, wider
 *   Gaussian smoothing (sigma ORIENTATION.fieldSigma) of that vector. Output channels: [U, V, coherence, energy].
 *   The dominant gradient direction (the ridge NORMAL) at a pixel is 0.5 * atan2(V, U), in image coordinates
 *   (x right, y down); |(U, V)| is the smoothed orientation certainty.
 * - `fp_gabor`: a bank of GABOR.orientations x GABOR.periods even-symmetric Gabor filters with an isotropic Gaussian
 *   (sigma GABOR.sigma), so that each filter splits into two separable products (cos*cos - sin*sin): a horizontal Conv,
 *   a depthwise vertical Conv and a grouped 1x1 Conv that subtracts the pair. Output channel p * K + k is the filter
 *   whose cosine runs along the normal angle k * pi / K with period GABOR.periods[p]; each filter has unit gain at its
 *   own frequency, so neighbouring channels can be blended per pixel.
 *
 * Both take a [1, 1, H, W] float image of any size and are deterministic: `buildFingerprintGraphs()` gives the same
 * bytes on every call. `models/build.ts` writes the files and their manifest entries.
 */
import { GraphBuilder } from '../onnx/graph.ts';

/** Structure-tensor parameters, pixels at 500 dpi. */
export const ORIENTATION = Object.freeze({ tensorSigma: 3, fieldSigma: 6, epsilon: 1e-6 });

/** Gabor bank, pixels at 500 dpi. Periods span the ridge periods of adult fingers (about 6-13 px at 500 dpi). */
export const GABOR = Object.freeze({ orientations: 8, periods: Object.freeze([6.5, 9, 12.5]) as readonly number[], sigma: 3.6, radius: 8 });

export interface FingerprintGraphSpec {
  name: 'fp_orientation' | 'fp_gabor';
  inputs: Record<string, Array<number | string>>;
  outputs: Record<string, Array<number | string>>;
  description: string;
  build: () => GraphBuilder;
}

export const FINGERPRINT_GRAPHS: FingerprintGraphSpec[] = [
  {
    name: 'fp_orientation',
    inputs: { image: [1, 1, 'height', 'width'] },
    outputs: { field: [1, 4, 'height', 'width'] },
    description:
      'Fingerprint orientation: Sobel structure tensor smoothed (sigma 3), coherence, coherence-weighted doubled-angle vector smoothed (sigma 6); channels U, V, coherence, gradient energy.',
    build: buildOrientationGraph,
  },
  {
    name: 'fp_gabor',
    inputs: { image: [1, 1, 'height', 'width'] },
    outputs: { responses: [1, GABOR.orientations * GABOR.periods.length, 'height', 'width'] },
    description: `Fingerprint contextual enhancement: ${GABOR.orientations} orientations x periods ${GABOR.periods.join('/')} px even Gabor bank (isotropic sigma ${GABOR.sigma}, 17x17, separable), unit gain per filter.`,
    build: buildGaborGraph,
  },
];

/** ONNX bytes per graph name, deterministic. */
export function buildFingerprintGraphs(): Map<string, Uint8Array> {
  const out = new Map<string, Uint8Array>();
  for (const spec of FINGERPRINT_GRAPHS) {
    out.set(spec.name, spec.build().serialize({ source: 'biokiosk models/fingerprint/build.ts', license: 'UNLICENSED', description: spec.description }));
  }
  return out;
}

/** Normalised 1-D Gaussian taps for offsets -r..r. */
export function gaussianTaps(sigma: number, radius: number): Float32Array {
  const taps = new Float32Array(2 * radius + 1);
  let sum = 0;
  for (let i = -radius; i <= radius; i++) sum += taps[i + radius] = Math.exp((-i * i) / (2 * sigma * sigma));
  for (let i = 0; i < taps.length; i++) taps[i]! /= sum;
  return taps;
}

/** Separable Gaussian blur of each of `channels` channels (depthwise; zero padding darkens borders, ratios stay sound). */
function blur(g: GraphBuilder, x: string, channels: number, sigma: number, tag: string): string {
  const r = Math.ceil(2.5 * sigma);
  const taps = gaussianTaps(sigma, r);
  const many = new Float32Array(channels * taps.length);
  for (let c = 0; c < channels; c++) many.set(taps, c * taps.length);
  const h = `${tag}_h`;
  const v = `${tag}_v`;
  g.constant(h, [channels, 1, 1, 2 * r + 1], many);
  g.constant(v, [channels, 1, 2 * r + 1, 1], many);
  const a = g.node('Conv', [x, h], { pads: [0, r, 0, r], group: channels });
  return g.node('Conv', [a, v], { pads: [r, 0, r, 0], group: channels });
}

/** Channel `index` of a [1, C, H, W] tensor as [1, 1, H, W] (a 1x1 Conv that picks it: no Slice constants needed). */
function pick(g: GraphBuilder, x: string, channels: number, index: number): string {
  const name = `pick_${channels}_${index}_${x}`;
  const w = new Float32Array(channels);
  w[index] = 1;
  g.constant(name, [1, channels, 1, 1], w);
  return g.node('Conv', [x, name]);
}

function buildOrientationGraph(): GraphBuilder {
  const g = new GraphBuilder('fp_orientation');
  const x = g.input('image', [1, 1, 'height', 'width']);
  // Sobel, scaled by 1/8 so a unit step gives a unit gradient.
  g.constant('sobel_x', [1, 1, 3, 3], Float32Array.from([-1, 0, 1, -2, 0, 2, -1, 0, 1].map((v) => v / 8)));
  g.constant('sobel_y', [1, 1, 3, 3], Float32Array.from([-1, -2, -1, 0, 0, 0, 1, 2, 1].map((v) => v / 8)));
  g.constant('two', [], Float32Array.of(2));
  g.constant('eps', [], Float32Array.of(ORIENTATION.epsilon));
  const gx = g.node('Conv', [x, 'sobel_x'], { pads: [1, 1, 1, 1] });
  const gy = g.node('Conv', [x, 'sobel_y'], { pads: [1, 1, 1, 1] });
  const gxx = g.node('Mul', [gx, gx]);
  const gyy = g.node('Mul', [gy, gy]);
  const gxy = g.node('Mul', [gx, gy]);
  const tensor = blur(g, g.node('Concat', [g.node('Sub', [gxx, gyy]), g.node('Mul', [gxy, 'two']), g.node('Add', [gxx, gyy])], { axis: 1 }), 3, ORIENTATION.tensorSigma, 'tensor');
  const a = pick(g, tensor, 3, 0);
  const b = pick(g, tensor, 3, 1);
  const c = pick(g, tensor, 3, 2);
  const denom = g.node('Add', [c, 'eps']);
  const magnitude = g.node('Sqrt', [g.node('Add', [g.node('Mul', [a, a]), g.node('Mul', [b, b])])]);
  const coherence = g.node('Div', [magnitude, denom]);
  // Coherence-weighted unit doubled-angle vectors: noisy regions vote weakly in the wide smoothing.
  const uv = blur(g, g.node('Div', [g.node('Concat', [a, b], { axis: 1 }), denom]), 2, ORIENTATION.fieldSigma, 'field');
  const field = g.node('Concat', [uv, coherence, c], { axis: 1 });
  g.output(field, [1, 4, 'height', 'width'], 'field');
  return g;
}

/** The 2-D kernel of bank channel (k, p), for reference and tests: G(x)G(y)cos(w (x cos a + y sin a)) / gain. */
export function gaborKernel(k: number, p: number): Float32Array {
  const { sigma, radius, orientations } = GABOR;
  const size = 2 * radius + 1;
  const angle = (k * Math.PI) / orientations;
  const w = (2 * Math.PI) / GABOR.periods[p]!;
  const gx = gaussianTaps(sigma, radius);
  const out = new Float32Array(size * size);
  let gain = 0;
  for (let y = -radius; y <= radius; y++) {
    for (let x = -radius; x <= radius; x++) {
      const phase = w * (x * Math.cos(angle) + y * Math.sin(angle));
      const val = gx[x + radius]! * gx[y + radius]! * Math.cos(phase);
      out[(y + radius) * size + x + radius] = val;
      gain += val * Math.cos(phase);
    }
  }
  for (let i = 0; i < out.length; i++) out[i]! /= gain;
  return out;
}

function buildGaborGraph(): GraphBuilder {
  const g = new GraphBuilder('fp_gabor');
  const x = g.input('image', [1, 1, 'height', 'width']);
  const { sigma, radius, orientations: K, periods } = GABOR;
  const C = K * periods.length;
  const size = 2 * radius + 1;
  const taps = gaussianTaps(sigma, radius);
  const horizontal = new Float32Array(2 * C * size);
  const vertical = new Float32Array(2 * C * size);
  for (let p = 0; p < periods.length; p++) {
    const w = (2 * Math.PI) / periods[p]!;
    for (let k = 0; k < K; k++) {
      const c = p * K + k;
      const angle = (k * Math.PI) / K;
      const u = w * Math.cos(angle);
      const v = w * Math.sin(angle);
      // Gain of the full 2-D filter at its own frequency, folded into the horizontal taps.
      let gain = 0;
      for (let yy = -radius; yy <= radius; yy++) {
        for (let xx = -radius; xx <= radius; xx++) gain += taps[xx + radius]! * taps[yy + radius]! * Math.cos(u * xx + v * yy) ** 2;
      }
      for (let i = -radius; i <= radius; i++) {
        const t = taps[i + radius]!;
        horizontal[(2 * c) * size + i + radius] = (t * Math.cos(u * i)) / gain;
        horizontal[(2 * c + 1) * size + i + radius] = (t * Math.sin(u * i)) / gain;
        vertical[(2 * c) * size + i + radius] = t * Math.cos(v * i);
        vertical[(2 * c + 1) * size + i + radius] = t * Math.sin(v * i);
      }
    }
  }
  const pairs = new Float32Array(2 * C);
  for (let c = 0; c < C; c++) {
    pairs[2 * c] = 1;
    pairs[2 * c + 1] = -1;
  }
  g.constant('gabor_h', [2 * C, 1, 1, size], horizontal);
  g.constant('gabor_v', [2 * C, 1, size, 1], vertical);
  g.constant('gabor_pairs', [C, 2, 1, 1], pairs);
  const h = g.node('Conv', [x, 'gabor_h'], { pads: [0, radius, 0, radius] });
  const hv = g.node('Conv', [h, 'gabor_v'], { pads: [radius, 0, radius, 0], group: 2 * C });
  const responses = g.node('Conv', [hv, 'gabor_pairs'], { group: C });
  g.output(responses, [1, C, 'height', 'width'], 'responses');
  return g;
}
