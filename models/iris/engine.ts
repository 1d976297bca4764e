/**
 * The iris modality as a ModalityEngine: IrisExtractor for extraction, `biokiosk-iris/1` templates, the Hamming
 * matcher for comparison.
 *
 * The model identity in templates (`irisModelIdentity`) is one sha256 over the graph's manifest hash, every
 * extraction and matching parameter, and IRIS_CODE_VERSION (bumped when the code's meaning changes without a
 * parameter changing), so a verifier can allow or refuse it like a face model.
 */
import { createHash } from 'node:crypto';
import type { ComparisonResult, Extraction, ModalityEngine } from '../modality.ts';
import { FILTER } from './build.ts';
import { decodeIrisImage } from './decode.ts';
import { ENCODE, IrisExtractor } from './extractor.ts';
import { compareIrises, IRIS_MATCH, prepareIrisTemplate, type PreparedIris } from './matcher.ts';
import { IRIS_PARAMS } from './params.ts';
import { encodeIrisTemplate } from './template.ts';

export const IRIS_MODEL_NAME = 'biokiosk-iris-code/1';
export const IRIS_CODE_VERSION = 1;

export function irisModelIdentity(graphSha256: string): { name: string; sha256: string } {
  const h = createHash('sha256').update(IRIS_MODEL_NAME);
  h.update(`\ncode:${IRIS_CODE_VERSION}\niris_loggabor:${graphSha256}`);
  h.update(`\nparams:${JSON.stringify(IRIS_PARAMS)}\nfilter:${JSON.stringify(FILTER)}\nencode:${JSON.stringify(ENCODE)}\nmatch:${JSON.stringify(IRIS_MATCH)}`);
  return { name: IRIS_MODEL_NAME, sha256: h.digest('hex') };
}

export interface IrisEngineOptions {
  modelsDir?: string;
  threads?: number;
  threshold?: number;
}

export class IrisEngine implements ModalityEngine {
  readonly name = 'iris' as const;
  private readonly prepared = new WeakMap<Uint8Array, PreparedIris>();

  private constructor(
    readonly extractor: IrisExtractor,
    readonly model: { name: string; sha256: string },
    private readonly options: IrisEngineOptions,
  ) {}

  static async create(options: IrisEngineOptions = {}): Promise<IrisEngine> {
    const extractor = await IrisExtractor.load(options);
    return new IrisEngine(extractor, irisModelIdentity(extractor.modelHash), options);
  }

  async extract(image: Uint8Array): Promise<Extraction> {
    const t0 = performance.now();
    const gray = await decodeIrisImage(image, { maxSide: IRIS_PARAMS.maxSide });
    const t1 = performance.now();
    const r = await this.extractor.extract(gray);
    const t2 = performance.now();
    const template = encodeIrisTemplate({ model: this.model, quality: r.quality.score, code: r.code, mask: r.mask });
    return {
      template,
      quality: r.quality,
      timings: { decode: t1 - t0, ...r.timings, template: performance.now() - t2 },
      info: {
        pupil: roundCircle(r.pupil),
        iris: roundCircle(r.iris),
        usableBits: Math.round(r.usableBits * 1000) / 1000,
        image: { width: gray.width, height: gray.height },
        model: this.model,
      },
    };
  }

  private prepare(t: Uint8Array): PreparedIris {
    let p = this.prepared.get(t);
    if (!p) {
      p = prepareIrisTemplate(t);
      this.prepared.set(t, p);
    }
    return p;
  }

  compare(a: Uint8Array, b: Uint8Array): ComparisonResult {
    const { bits: _b, shift: _s, ...r } = compareIrises(this.prepare(a), this.prepare(b), { threshold: this.options.threshold });
    return r;
  }

  async close(): Promise<void> {
    await this.extractor.close();
  }
}

function roundCircle(c: { x: number; y: number; r: number }): { x: number; y: number; r: number } {
  const k = (v: number) => Math.round(v * 10) / 10;
  return { x: k(c.x), y: k(c.y), r: k(c.r) };
}
