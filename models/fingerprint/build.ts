/**
 * The fingerprint extractor's convolution-heavy stages as ONNX graphs, built from code (no weights to download):
 *
 * - `fp_orientation`: Sobel gradients -> structure tensor (gxx - gyy, 2 gxy, gxx + gyy) -> 2x2 mean (half
 *   resolution from here on) -> Gaussian smoothing (sigma ORIENTATION.tensorSigma) -> the coherence-weighted
 *   doubled-angle vector -> a second, wider Gaussian smoothing (sigma ORIENTATION.fieldSigma) of that vector, and a
 *   third, coarser one of the result (sigma ORIENTATION.coarseSigma). Output channels [U, V, Uc, Vc] (fine, then
 *   coarse) at ceil(H/2) x ceil(W/2); the caller picks, per pixel, the scale whose vector is longer (fine where the
 *   flow is clear or curves, as at cores; coarse where pores, creases or dryness scramble the gradients) and
 *   interpolates to full resolution. The dominant gradient direction (the ridge NORMAL) is 0.5 * atan2(V, U), in
 *   image coordinates (x right, y down); |(U, V)| is the smoothed orientation certainty.
 * - `fp_gabor`: a bank of GABOR.orientations x GABOR.periods even-symmetric Gabor filters with an isotropic Gaussian
 *   (sigma GABOR.sigmaPerPeriod x period), so that each filter is a sum of separable products (cos*cos -+ sin*sin), shared by mirrored
 *   orientations: a vertical Conv, a depthwise horizontal Conv, and a grouped 1x1 Conv that combines the products of
 *   each period into its K filters (see buildGaborGraph). Output channel p * K + k is the filter
 *   whose cosine runs along the normal angle k * pi / K with period GABOR.periods[p]; each filter has unit gain at its
 *   own frequency, so neighbouring channels can be blended per pixel.
 *
 * Both take a [1, 1, H, W] float image of any size and are deterministic: `buildFingerprintGraphs()` gives the same
 * bytes on every call. `models/build.ts` writes the files and their manifest entries.
 */
import { GraphBuilder } from '../onnx/graph.ts';

/** Structure-tensor parameters, pixels at 500 dpi. */
export const ORIENTATION = Object.freeze({ tensorSigma: 3, fieldSigma: 6, coarseSigma: 12, epsilon: 1e-6 });

/**
 * Gabor bank, pixels at 500 dpi. Periods span the ridge periods of adult fingers (about 6-13 px at 500 dpi). Each
 * period's Gaussian envelope has sigma = sigmaPerPeriod x period (so every filter spans the same number of ridges):
 * a fixed sigma is too narrow for wide ridges and leaves the breaks of dry and dotted real prints unbridged
 * (BENCHMARKS.md, issue 12).
 */
export const GABOR = Object.freeze({ orientations: 8, periods: Object.freeze([6.5, 9, 12.5]) as readonly number[], sigmaPerPeriod: 0.5, radius: 13 });

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
    outputs: { field: [1, 4, 'half_height', 'half_width'] },
    description: `Fingerprint orientation at half resolution: Sobel structure tensor, 2x2 mean, smoothed (sigma ${ORIENTATION.tensorSigma} full-resolution px), coherence-weighted doubled-angle vector smoothed (sigma ${ORIENTATION.fieldSigma}), then smoothed again (sigma ${ORIENTATION.coarseSigma}); channels U, V, coarse U, coarse V.`,
    build: buildOrientationGraph,
  },
  {
    name: 'fp_gabor',
    inputs: { image: [1, 1, 'height', 'width'] },
    outputs: { responses: [1, GABOR.orientations * GABOR.periods.length, 'height', 'width'] },
    description: `Fingerprint contextual enhancement: ${GABOR.orientations} orientations x periods ${GABOR.periods.join('/')} px even Gabor bank (isotropic sigma ${GABOR.sigmaPerPeriod} x period, ${2 * GABOR.radius + 1}x${2 * GABOR.radius + 1}, separable), unit gain per filter.`,
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

/** Gaussian sigma of the bank's period p (pixels at 500 dpi). */
export function gaborSigma(p: number): number {
  return GABOR.sigmaPerPeriod * GABOR.periods[p]!;
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
  const products = g.node('Concat', [g.node('Sub', [gxx, gyy]), g.node('Mul', [gxy, 'two']), g.node('Add', [gxx, gyy])], { axis: 1 });
  // The tensor is smooth from here on: a 2x2 mean halves each side, and both smoothings run at half resolution
  // (sigmas halved), a quarter of the work. The 2x2 box adds a variance of 1/4 full-resolution pixel^2: negligible.
  const half = g.node('AveragePool', [products], { kernel_shape: [2, 2], strides: [2, 2], ceil_mode: 1 });
  const tensor = blur(g, half, 3, ORIENTATION.tensorSigma / 2, 'tensor');
  const a = pick(g, tensor, 3, 0);
  const b = pick(g, tensor, 3, 1);
  const c = pick(g, tensor, 3, 2);
  const denom = g.node('Add', [c, 'eps']);
  // Coherence-weighted unit doubled-angle vectors ((a, b) / c has length = coherence): noisy regions vote weakly.
  const uv = blur(g, g.node('Div', [g.node('Concat', [a, b], { axis: 1 }), denom]), 2, ORIENTATION.fieldSigma / 2, 'field');
  const coarse = blur(g, uv, 2, ORIENTATION.coarseSigma / 2, 'coarse');
  g.output(g.node('Concat', [uv, coarse], { axis: 1 }), [1, 4, 'half_height', 'half_width'], 'field');
  return g;
}

/** The 2-D kernel of bank channel (k, p), for reference and tests: G(x)G(y)cos(w (x cos a + y sin a)) / gain. */
export function gaborKernel(k: number, p: number): Float32Array {
  const { radius, orientations } = GABOR;
  const size = 2 * radius + 1;
  const angle = (k * Math.PI) / orientations;
  const w = (2 * Math.PI) / GABOR.periods[p]!;
  const gx = gaussianTaps(gaborSigma(p), radius);
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

/**
 * The bank as separable products. Orientations k and K - k mirror each other (cos(u x + v y) and cos(-u x + v y)), so
 * they share their two products cos(u x) cos(v y) and sin(u x) sin(v y): the filter of k is their difference, that of
 * K - k their sum. With k = 0 (no vertical phase) and k = K / 2 (no horizontal phase) one product each, a period
 * needs exactly K product channels for its K filters, half of what a product pair per filter costs.
 */
function buildGaborGraph(): GraphBuilder {
  const g = new GraphBuilder('fp_gabor');
  const x = g.input('image', [1, 1, 'height', 'width']);
  const { radius, orientations: K, periods } = GABOR;
  if (K % 2 !== 0) throw new Error('the Gabor bank needs an even number of orientations');
  const C = K * periods.length;
  const size = 2 * radius + 1;
  let taps = gaussianTaps(gaborSigma(0), radius); // per period, set in the loop below
  const horizontal = new Float32Array(C * size);
  const vertical = new Float32Array(C * size);
  const combine = new Float32Array(C * K);
  const setProduct = (channel: number, h: (i: number) => number, v: (i: number) => number) => {
    for (let i = -radius; i <= radius; i++) {
      const t = taps[i + radius]!;
      horizontal[channel * size + i + radius] = t * h(i);
      vertical[channel * size + i + radius] = t * v(i);
    }
  };
  // Gain of filter (u, v) at its own frequency: each filter gets unit gain (see gaborKernel).
  const gainOf = (u: number, v: number) => {
    let gain = 0;
    for (let yy = -radius; yy <= radius; yy++) {
      for (let xx = -radius; xx <= radius; xx++) gain += taps[xx + radius]! * taps[yy + radius]! * Math.cos(u * xx + v * yy) ** 2;
    }
    return gain;
  };
  for (let p = 0; p < periods.length; p++) {
    taps = gaussianTaps(gaborSigma(p), radius);
    const w = (2 * Math.PI) / periods[p]!;
    const base = p * K; // product channels of this period, and its output channels
    // weight of product channel j (0..K-1 within the period) in output filter k, in the grouped 1x1 Conv
    const weight = (k: number, j: number, value: number) => (combine[(base + k) * K + j] = value);
    setProduct(base, (i) => Math.cos(w * i), () => 1);
    weight(0, 0, 1 / gainOf(w, 0));
    for (let m = 1; m < K / 2; m++) {
      const angle = (m * Math.PI) / K;
      const u = w * Math.cos(angle);
      const v = w * Math.sin(angle);
      const gain = gainOf(u, v);
      setProduct(base + 2 * m - 1, (i) => Math.cos(u * i), (i) => Math.cos(v * i));
      setProduct(base + 2 * m, (i) => Math.sin(u * i), (i) => Math.sin(v * i));
      weight(m, 2 * m - 1, 1 / gain);
      weight(m, 2 * m, -1 / gain);
      weight(K - m, 2 * m - 1, 1 / gain);
      weight(K - m, 2 * m, 1 / gain);
    }
    setProduct(base + K - 1, () => 1, (i) => Math.cos(w * i));
    weight(K / 2, K - 1, 1 / gainOf(0, w));
  }
  g.constant('gabor_h', [C, 1, 1, size], horizontal);
  g.constant('gabor_v', [C, 1, size, 1], vertical);
  g.constant('gabor_combine', [C, K, 1, 1], combine);
  // Vertical pass first: onnxruntime's depthwise Conv is about twice as fast along rows as down columns.
  const v = g.node('Conv', [x, 'gabor_v'], { pads: [radius, 0, radius, 0] });
  const vh = g.node('Conv', [v, 'gabor_h'], { pads: [0, radius, 0, radius], group: C });
  const responses = g.node('Conv', [vh, 'gabor_combine'], { group: periods.length });
  g.output(responses, [1, C, 'height', 'width'], 'responses');
  return g;
}
