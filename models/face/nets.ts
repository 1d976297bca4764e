/**
 * The three face nets of @vladmandic/face-api (tiny face detector, 68-point landmarks, ResNet-29 descriptor),
 * rebuilt as ONNX graphs from their TF.js weights. Each graph takes raw RGB pixels, NHWC float32 in 0..255, so the
 * caller feeds decoded image bytes directly; normalisation (mean subtraction, /255) happens inside the graph.
 *
 * Layer semantics follow face-api's TF.js code: 'same' padding puts the odd extra pixel at the end (SAME_UPPER),
 * separable convs are a depthwise conv followed by a pointwise conv with bias.
 */
import { GraphBuilder } from '../onnx/graph.ts';
import { depthwiseToOihw, hwioToOihw, type NamedTensor } from './tfjs-weights.ts';

type Weights = Map<string, NamedTensor>;

function take(w: Weights, name: string): NamedTensor {
  const t = w.get(name);
  if (!t) throw new Error(`weights: missing tensor ${name}`);
  return t;
}

/** NHWC pixels -> NCHW, minus the per-channel mean, divided by 255 (as face-api's `normalize(...).div(255)`). */
function normalizedInput(g: GraphBuilder, input: string, meanRgb: [number, number, number]): string {
  const nchw = g.node('Transpose', [input], { perm: [0, 3, 1, 2] });
  const mean = g.constant('mean_rgb', [1, 3, 1, 1], Float32Array.from(meanRgb));
  const centred = g.node('Sub', [nchw, mean]);
  const scale = g.constant('pixel_scale', [], Float32Array.from([255]));
  return g.node('Div', [centred, scale]);
}

interface ConvOpts {
  stride?: number;
  padding: 'same' | 'valid' | number;
  group?: number;
}

function conv(g: GraphBuilder, x: string, name: string, W: { dims: number[]; data: Float32Array }, bias: Float32Array | null, o: ConvOpts): string {
  const wName = g.constant(`${name}/W`, W.dims, W.data);
  const inputs = [x, wName];
  if (bias) inputs.push(g.constant(`${name}/B`, [bias.length], bias));
  const attrs: Record<string, number | string | number[]> = {
    kernel_shape: [W.dims[2]!, W.dims[3]!],
    strides: [o.stride ?? 1, o.stride ?? 1],
  };
  if (o.group && o.group > 1) attrs['group'] = o.group;
  if (o.padding === 'same') attrs['auto_pad'] = 'SAME_UPPER';
  else if (typeof o.padding === 'number') attrs['pads'] = [o.padding, o.padding, o.padding, o.padding];
  return g.node('Conv', inputs, attrs);
}

/** Depthwise (grouped) conv then pointwise 1x1 conv with bias: TF's separableConv2d + bias. */
function separableConv(g: GraphBuilder, w: Weights, x: string, prefix: string, stride: number, padding: 'same' | number): string {
  const dw = depthwiseToOihw(take(w, `${prefix}/depthwise_filter`));
  const pw = hwioToOihw(take(w, `${prefix}/pointwise_filter`));
  const depth = conv(g, x, `${prefix}/depthwise`, dw, null, { stride, padding, group: dw.dims[0]! });
  return conv(g, depth, `${prefix}/pointwise`, pw, take(w, `${prefix}/bias`).data, { padding: 'valid' });
}

function maxPool(g: GraphBuilder, x: string, k: number, stride: number, padding: 'same' | 'valid'): string {
  const attrs: Record<string, number | string | number[]> = { kernel_shape: [k, k], strides: [stride, stride] };
  if (padding === 'same') attrs['auto_pad'] = 'SAME_UPPER';
  return g.node('MaxPool', [x], attrs);
}

const leaky = (g: GraphBuilder, x: string) => g.node('LeakyRelu', [x], { alpha: { float: 0.1 } });
const relu = (g: GraphBuilder, x: string) => g.node('Relu', [x]);
const add = (g: GraphBuilder, a: string, b: string) => g.node('Add', [a, b]);

/** Fully connected layer on a [1, C, 1, 1] or [1, C] value: flatten, MatMul, optional bias. */
function dense(g: GraphBuilder, x: string, name: string, weights: NamedTensor, bias: NamedTensor | null): string {
  const flat = g.node('Flatten', [x], { axis: 1 });
  const W = g.constant(`${name}/W`, weights.shape, weights.data);
  const product = g.node('MatMul', [flat, W]);
  if (!bias) return product;
  return g.node('Add', [product, g.constant(`${name}/B`, [bias.data.length], bias.data)]);
}

// ---------------------------------------------------------------------------------------------------------------
// Tiny face detector: Tiny-YOLOv2 style with separable convs; output [1, gridH, gridW, 5 anchors x 5 values].

export const TINY_DETECTOR_MEAN: [number, number, number] = [117.001, 114.697, 97.404];

export function buildTinyFaceDetector(w: Weights): GraphBuilder {
  const g = new GraphBuilder('tiny_face_detector');
  const input = g.input('pixels', [1, 'height', 'width', 3]);
  let x = normalizedInput(g, input, TINY_DETECTOR_MEAN);
  x = leaky(g, conv(g, x, 'conv0', hwioToOihw(take(w, 'conv0/filters')), take(w, 'conv0/bias').data, { padding: 'valid' }));
  x = maxPool(g, x, 2, 2, 'same');
  for (const i of [1, 2, 3, 4, 5]) {
    // face-api pads by one on every side, then convolves 'valid'.
    x = leaky(g, separableConv(g, w, x, `conv${i}`, 1, 1));
    x = maxPool(g, x, 2, i === 5 ? 1 : 2, 'same');
  }
  x = conv(g, x, 'conv8', hwioToOihw(take(w, 'conv8/filters')), take(w, 'conv8/bias').data, { padding: 'valid' });
  const nhwc = g.node('Transpose', [x], { perm: [0, 2, 3, 1] });
  g.output(nhwc, [1, 'grid_h', 'grid_w', 25], 'boxes');
  return g;
}

// ---------------------------------------------------------------------------------------------------------------
// 68-point landmark net: four dense blocks of separable convs on a 112x112 crop, average pool, fully connected.

export const FACE_MEAN: [number, number, number] = [122.782, 117.001, 104.298];

function denseBlock4(g: GraphBuilder, w: Weights, x: string, prefix: string, first: boolean): string {
  const c0 = first
    ? conv(g, x, `${prefix}/conv0`, hwioToOihw(take(w, `${prefix}/conv0/filters`)), take(w, `${prefix}/conv0/bias`).data, { stride: 2, padding: 'same' })
    : separableConv(g, w, x, `${prefix}/conv0`, 2, 'same');
  const out1 = relu(g, c0);
  const out2 = separableConv(g, w, out1, `${prefix}/conv1`, 1, 'same');
  const in3 = relu(g, add(g, out1, out2));
  const out3 = separableConv(g, w, in3, `${prefix}/conv2`, 1, 'same');
  const in4 = relu(g, add(g, out1, add(g, out2, out3)));
  const out4 = separableConv(g, w, in4, `${prefix}/conv3`, 1, 'same');
  return relu(g, add(g, out1, add(g, out2, add(g, out3, out4))));
}

export function buildLandmarkNet(w: Weights): GraphBuilder {
  const g = new GraphBuilder('face_landmark_68');
  const input = g.input('pixels', [1, 112, 112, 3]);
  let x = normalizedInput(g, input, FACE_MEAN);
  x = denseBlock4(g, w, x, 'dense0', true);
  x = denseBlock4(g, w, x, 'dense1', false);
  x = denseBlock4(g, w, x, 'dense2', false);
  x = denseBlock4(g, w, x, 'dense3', false);
  x = g.node('AveragePool', [x], { kernel_shape: [7, 7], strides: [2, 2] });
  const out = dense(g, x, 'fc', take(w, 'fc/weights'), take(w, 'fc/bias'));
  // 136 values: x0, y0, x1, y1, ... relative to the 112x112 input (0..1).
  g.output(out, [1, 136], 'landmarks');
  return g;
}

// ---------------------------------------------------------------------------------------------------------------
// Face descriptor: dlib's ResNet-29 as ported by face-api. Each conv carries a per-channel scale layer, folded here
// into the conv's weights and bias: (conv(x) + b) * s + t = conv(x; W*s) + (b*s + t).

function foldedConv(g: GraphBuilder, w: Weights, x: string, prefix: string, stride: number, padding: 'same' | 'valid', withRelu: boolean): string {
  const filters = hwioToOihw(take(w, `${prefix}/conv/filters`));
  const bias = take(w, `${prefix}/conv/bias`).data;
  const s = take(w, `${prefix}/scale/weights`).data;
  const t = take(w, `${prefix}/scale/biases`).data;
  const outC = filters.dims[0]!;
  const per = filters.data.length / outC;
  const W = new Float32Array(filters.data.length);
  for (let o = 0; o < outC; o++) for (let i = 0; i < per; i++) W[o * per + i] = filters.data[o * per + i]! * s[o]!;
  const B = new Float32Array(outC);
  for (let o = 0; o < outC; o++) B[o] = bias[o]! * s[o]! + t[o]!;
  const y = conv(g, x, prefix, { dims: filters.dims, data: W }, B, { stride, padding });
  return withRelu ? relu(g, y) : y;
}

function residual(g: GraphBuilder, w: Weights, x: string, prefix: string): string {
  let out = foldedConv(g, w, x, `${prefix}/conv1`, 1, 'same', true);
  out = foldedConv(g, w, out, `${prefix}/conv2`, 1, 'same', false);
  return relu(g, add(g, out, x));
}

/**
 * Down-sampling residual: the main branch convolves with stride 2 ('valid'); the shortcut is a 2x2 average pool.
 * When the channel count doubles the shortcut gets zero channels; when the main branch is one pixel smaller
 * (odd input), it gets a zero row at the bottom and a zero column at the right.
 */
function residualDown(g: GraphBuilder, w: Weights, x: string, prefix: string, inSize: number, inC: number): { value: string; size: number; channels: number } {
  let out = foldedConv(g, w, x, `${prefix}/conv1`, 2, 'valid', true);
  out = foldedConv(g, w, out, `${prefix}/conv2`, 1, 'same', false);
  const outC = take(w, `${prefix}/conv2/conv/filters`).shape[3]!;
  const mainSize = Math.floor((inSize - 3) / 2) + 1;
  const poolSize = Math.floor(inSize / 2);
  if (mainSize !== poolSize) {
    const grow = poolSize - mainSize;
    out = g.node('Pad', [out, g.constantInt64(`${prefix}/pad_spatial`, [0, 0, 0, 0, 0, 0, grow, grow])], { mode: 'constant' });
  }
  let pooled = g.node('AveragePool', [x], { kernel_shape: [2, 2], strides: [2, 2] });
  if (outC !== inC) {
    pooled = g.node('Pad', [pooled, g.constantInt64(`${prefix}/pad_channels`, [0, 0, 0, 0, 0, outC - inC, 0, 0])], { mode: 'constant' });
  }
  return { value: relu(g, add(g, pooled, out)), size: poolSize, channels: outC };
}

export function buildRecognitionNet(w: Weights): GraphBuilder {
  const g = new GraphBuilder('face_recognition_resnet29');
  const input = g.input('pixels', [1, 150, 150, 3]);
  let x = normalizedInput(g, input, FACE_MEAN);
  x = foldedConv(g, w, x, 'conv32_down', 2, 'valid', true); // 150 -> 72
  x = maxPool(g, x, 3, 2, 'valid'); // 72 -> 35
  let size = 35;
  let channels = 32;
  for (const p of ['conv32_1', 'conv32_2', 'conv32_3']) x = residual(g, w, x, p);
  const stages: Array<[string, string[]]> = [
    ['conv64_down', ['conv64_1', 'conv64_2', 'conv64_3']],
    ['conv128_down', ['conv128_1', 'conv128_2']],
    ['conv256_down', ['conv256_1', 'conv256_2']],
    ['conv256_down_out', []],
  ];
  for (const [down, blocks] of stages) {
    const r = residualDown(g, w, x, down, size, channels);
    x = r.value;
    size = r.size;
    channels = r.channels;
    for (const b of blocks) x = residual(g, w, x, b);
  }
  const pooled = g.node('ReduceMean', [x], { axes: [2, 3], keepdims: 0 });
  const fc = take(w, 'fc');
  const out = g.node('MatMul', [pooled, g.constant('fc/W', fc.shape, fc.data)]);
  g.output(out, [1, 128], 'descriptor');
  return g;
}
