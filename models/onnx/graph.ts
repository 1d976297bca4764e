/**
 * Builds ONNX models (opset 13) from code: a graph of named values, nodes and float32 initializers, serialised
 * with the field numbers of onnx.proto. Deterministic: the same calls give the same bytes.
 */
import { ProtoWriter } from './protobuf.ts';

export const ONNX_IR_VERSION = 8;
export const ONNX_OPSET = 13;

const TENSOR_FLOAT = 1;
const TENSOR_INT64 = 7;

const ATTR_FLOAT = 1;
const ATTR_INT = 2;
const ATTR_STRING = 3;
const ATTR_INTS = 7;

export type AttrValue = number | string | number[] | { float: number };

interface NodeSpec {
  op: string;
  name: string;
  inputs: string[];
  outputs: string[];
  attrs: Record<string, AttrValue>;
}

interface Initializer {
  name: string;
  dims: number[];
  type: 'float32' | 'int64';
  data: Float32Array | BigInt64Array;
}

export interface ValueSpec {
  name: string;
  /** A number for a fixed size, a string for a symbolic (dynamic) one. */
  shape: Array<number | string>;
}

export class GraphBuilder {
  private nodes: NodeSpec[] = [];
  private initializers: Initializer[] = [];
  private inputs: ValueSpec[] = [];
  private outputs: ValueSpec[] = [];
  private counter = 0;

  constructor(readonly name: string) {}

  input(name: string, shape: Array<number | string>): string {
    this.inputs.push({ name, shape });
    return name;
  }

  output(value: string, shape: Array<number | string>, rename?: string): void {
    let name = value;
    if (rename && rename !== value) name = this.node('Identity', [value], {}, rename);
    this.outputs.push({ name, shape });
  }

  constant(name: string, dims: number[], data: Float32Array): string {
    const expected = dims.reduce((a, b) => a * b, 1);
    if (expected !== data.length) throw new Error(`initializer ${name}: dims ${dims.join('x')} need ${expected} values, got ${data.length}`);
    this.initializers.push({ name, dims, type: 'float32', data });
    return name;
  }

  constantInt64(name: string, values: number[]): string {
    this.initializers.push({ name, dims: [values.length], type: 'int64', data: BigInt64Array.from(values.map((v) => BigInt(v))) });
    return name;
  }

  /** Adds a node and returns the name of its (first) output. */
  node(op: string, inputs: string[], attrs: Record<string, AttrValue> = {}, outputName?: string): string {
    const id = this.counter++;
    const out = outputName ?? `${op.toLowerCase()}_${id}`;
    this.nodes.push({ op, name: `${op}_${id}`, inputs, outputs: [out], attrs });
    return out;
  }

  serialize(meta: Record<string, string> = {}): Uint8Array {
    const w = new ProtoWriter();
    w.int(1, ONNX_IR_VERSION);
    w.string(2, 'biokiosk');
    w.string(3, '1');
    w.message(7, (g) => this.writeGraph(g));
    w.message(8, (o) => o.string(1, '').int(2, ONNX_OPSET));
    for (const key of Object.keys(meta).sort()) {
      w.message(14, (e) => e.string(1, key).string(2, meta[key] ?? ''));
    }
    return w.finish();
  }

  private writeGraph(g: ProtoWriter): void {
    for (const n of this.nodes) g.message(1, (m) => writeNode(m, n));
    g.string(2, this.name);
    for (const t of this.initializers) g.message(5, (m) => writeTensor(m, t));
    for (const v of this.inputs) g.message(11, (m) => writeValueInfo(m, v));
    for (const v of this.outputs) g.message(12, (m) => writeValueInfo(m, v));
  }
}

function writeNode(m: ProtoWriter, n: NodeSpec): void {
  for (const i of n.inputs) m.string(1, i);
  for (const o of n.outputs) m.string(2, o);
  m.string(3, n.name);
  m.string(4, n.op);
  for (const key of Object.keys(n.attrs).sort()) {
    const v = n.attrs[key]!;
    m.message(5, (a) => {
      a.string(1, key);
      if (typeof v === 'number') {
        if (!Number.isInteger(v)) throw new Error(`attribute ${key}: use { float } for non-integers`);
        a.int(3, v).int(20, ATTR_INT);
      } else if (typeof v === 'string') {
        a.string(4, v).int(20, ATTR_STRING);
      } else if (Array.isArray(v)) {
        for (const x of v) a.int(8, x);
        a.int(20, ATTR_INTS);
      } else {
        a.float(2, v.float).int(20, ATTR_FLOAT);
      }
    });
  }
}

function writeTensor(m: ProtoWriter, t: Initializer): void {
  for (const d of t.dims) m.int(1, d);
  m.int(2, t.type === 'float32' ? TENSOR_FLOAT : TENSOR_INT64);
  m.string(8, t.name);
  // raw_data is little-endian by the ONNX spec; typed arrays are little-endian on every platform we ship to.
  m.bytes(9, new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength));
}

function writeValueInfo(m: ProtoWriter, v: ValueSpec): void {
  m.string(1, v.name);
  m.message(2, (type) =>
    type.message(1, (tensor) => {
      tensor.int(1, TENSOR_FLOAT);
      tensor.message(2, (shape) => {
        for (const d of v.shape) shape.message(1, (dim) => (typeof d === 'number' ? dim.int(1, d) : dim.string(2, d)));
      });
    }),
  );
}
