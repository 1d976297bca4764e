/**
 * The iris code's filter bank as an ONNX graph, built from code (no weights to download): `iris_loggabor`.
 *
 * Input: the normalised rubber-sheet image, padded by the caller (rows replicated, columns wrapped round, see
 * `padPolar` in encode.ts) to [1, 1, PAD_ROWS, PAD_COLS]. Two Convs:
 *  1. a Gaussian across rings (sigma FILTER.ringSigma rows, KH taps), stride FILTER.rowStride: one value per code ring;
 *  2. a complex 1-D log-Gabor along the angle (wavelength FILTER.wavelength columns, bandwidth sigma/f0 =
 *     FILTER.bandwidth), real (even) and imaginary (odd) parts as two output channels, stride FILTER.colStride.
 * Output [1, 2, codeRings, codeCols]: the phase of each complex response, quantised to 2 bits by encode.ts, is the
 * iris code. The log-Gabor has no DC response, so a brightness offset cannot flip a bit.
 *
 * The kernel is the inverse DFT (FILTER.dftSize points) of the analytic log-Gabor transfer function, truncated to
 * +-FILTER.halfWidth columns: plain loops over Math.cos/Math.exp, the same bytes on every run (models/build.ts).
 */
import { GraphBuilder } from '../onnx/graph.ts';
import { IRIS_PARAMS } from './params.ts';

export const FILTER = Object.freeze({
  wavelength: 18,
  bandwidth: 0.5,
  dftSize: 256,
  halfWidth: 20,
  ringSigma: 1.6,
  ringHalf: 4,
  rowStride: IRIS_PARAMS.polarRows / IRIS_PARAMS.codeRings,
  colStride: IRIS_PARAMS.polarCols / IRIS_PARAMS.codeCols,
});

/** Rows above the first polar row in the padded input, so that code ring k is centred on polar row stride*k + stride/2. */
export const PAD_TOP = FILTER.ringHalf - Math.floor(FILTER.rowStride / 2);
export const PAD_ROWS = (IRIS_PARAMS.codeRings - 1) * FILTER.rowStride + 2 * FILTER.ringHalf + 1;
export const PAD_LEFT = FILTER.halfWidth;
export const PAD_COLS = (IRIS_PARAMS.codeCols - 1) * FILTER.colStride + 2 * FILTER.halfWidth + 1;

export interface IrisGraphSpec {
  name: 'iris_loggabor';
  inputs: Record<string, Array<number | string>>;
  outputs: Record<string, Array<number | string>>;
  description: string;
  build: () => GraphBuilder;
}

export const IRIS_GRAPHS: IrisGraphSpec[] = [
  {
    name: 'iris_loggabor',
    inputs: { image: [1, 1, PAD_ROWS, PAD_COLS] },
    outputs: { responses: [1, 2, IRIS_PARAMS.codeRings, IRIS_PARAMS.codeCols] },
    description: `Iris code filter: Gaussian across rings (sigma ${FILTER.ringSigma} rows, stride ${FILTER.rowStride}), complex 1-D log-Gabor along the angle (wavelength ${FILTER.wavelength} of ${IRIS_PARAMS.polarCols} columns, sigma/f0 ${FILTER.bandwidth}, stride ${FILTER.colStride}); channels real, imaginary.`,
    build: buildLogGaborGraph,
  },
];

export function buildIrisGraphs(): Map<string, Uint8Array> {
  const out = new Map<string, Uint8Array>();
  for (const spec of IRIS_GRAPHS) {
    out.set(spec.name, spec.build().serialize({ source: 'biokiosk models/iris/build.ts', license: 'UNLICENSED', description: spec.description }));
  }
  return out;
}

/** Normalised Gaussian taps across rings. */
export function ringTaps(): Float32Array {
  const { ringSigma: s, ringHalf: r } = FILTER;
  const t = new Float32Array(2 * r + 1);
  let sum = 0;
  for (let i = -r; i <= r; i++) sum += t[i + r] = Math.exp(-(i * i) / (2 * s * s));
  for (let i = 0; i < t.length; i++) t[i]! /= sum;
  return t;
}

/** The complex log-Gabor kernel along the angle: [real (even), imaginary (odd)], each 2*halfWidth+1 taps. */
export function logGaborKernel(): { re: Float32Array; im: Float32Array } {
  const { wavelength, bandwidth, dftSize: n, halfWidth: h } = FILTER;
  const f0 = 1 / wavelength;
  const logB = Math.log(bandwidth);
  const transfer = new Float64Array(n);
  for (let k = 1; k < n / 2; k++) {
    const f = k / n;
    transfer[k] = Math.exp(-(Math.log(f / f0) ** 2) / (2 * logB * logB));
  }
  const re = new Float32Array(2 * h + 1);
  const im = new Float32Array(2 * h + 1);
  // h[m] = (1/n) sum_k H[k] e^{+2 pi i k m / n}; correlation in the Conv flips it, so store h[-m] at tap m.
  let norm = 0;
  for (let m = -h; m <= h; m++) {
    let a = 0;
    let b = 0;
    for (let k = 1; k < n / 2; k++) {
      const t = (2 * Math.PI * k * -m) / n;
      a += transfer[k]! * Math.cos(t);
      b += transfer[k]! * Math.sin(t);
    }
    re[m + h] = a / n;
    im[m + h] = b / n;
    norm += (a / n) ** 2 + (b / n) ** 2;
  }
  const scale = 1 / Math.sqrt(norm);
  // Remove what DC the truncation left in the even part, then unit energy.
  let mean = 0;
  for (const v of re) mean += v;
  mean /= re.length;
  for (let i = 0; i < re.length; i++) {
    re[i] = (re[i]! - mean) * scale;
    im[i] = im[i]! * scale;
  }
  return { re, im };
}

function buildLogGaborGraph(): GraphBuilder {
  const g = new GraphBuilder('iris_loggabor');
  const x = g.input('image', [1, 1, PAD_ROWS, PAD_COLS]);
  const kh = 2 * FILTER.ringHalf + 1;
  const kw = 2 * FILTER.halfWidth + 1;
  g.constant('ring_gauss', [1, 1, kh, 1], ringTaps());
  const { re, im } = logGaborKernel();
  const both = new Float32Array(2 * kw);
  both.set(re, 0);
  both.set(im, kw);
  g.constant('log_gabor', [2, 1, 1, kw], both);
  const rings = g.node('Conv', [x, 'ring_gauss'], { strides: [FILTER.rowStride, 1] });
  const responses = g.node('Conv', [rings, 'log_gabor'], { strides: [1, FILTER.colStride] });
  g.output(responses, [1, 2, IRIS_PARAMS.codeRings, IRIS_PARAMS.codeCols], 'responses');
  return g;
}
