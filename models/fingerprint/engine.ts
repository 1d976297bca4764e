/**
 * The fingerprint modality as a ModalityEngine: the minutiae extractor (extract/) for extraction, the
 * `biokiosk-fingerprint/1` template (an ISO/IEC 19794-2:2005 record plus the extractor's identity) and the MCC
 * matcher for comparison.
 *
 * The extractor's identity in templates (`fingerprintExtractorIdentity`) is one sha256 over everything that decides
 * what a template holds: the hashes of its ONNX graphs as the manifest lists them, every extractor parameter
 * (PARAMS, the graphs' ORIENTATION and GABOR constants, the working resolution, the quality retry level) and the
 * code's version (extract/version.ts, which a test ties to the sources). A verifier allows or refuses it like a
 * face model; a changed parameter or changed code gives a new identity, never templates under an old one.
 */
import { createHash } from 'node:crypto';
import type { ComparisonResult, Extraction, ModalityEngine } from '../modality.ts';
import { GABOR, ORIENTATION } from './build.ts';
import { decodeGray, FingerprintExtractor, type LoadOptions } from './extract/index.ts';
import { PARAMS, WORKING_DPI } from './extract/params.ts';
import { RETRY_BELOW } from './extract/quality.ts';
import { EXTRACTOR_CODE_VERSION, EXTRACTOR_SOURCE_DIGEST } from './extract/version.ts';
import { compareFingerprints, prepareFingerprintBytes, type FingerprintMatchOptions, type PreparedFingerprint } from './matcher/mcc.ts';
import type { FingerRecord } from './minutiae.ts';
import { encodeFingerprintTemplate } from './template.ts';

export const FINGERPRINT_EXTRACTOR_NAME = 'biokiosk-fingerprint-extractor/2';

/** JSON with object keys sorted at every level: the same settings always give the same bytes. */
function canonical(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonical).join(',')}]`;
  if (v && typeof v === 'object') return `{${Object.keys(v).sort().map((k) => `${JSON.stringify(k)}:${canonical((v as Record<string, unknown>)[k])}`).join(',')}}`;
  return JSON.stringify(v);
}

/** What, besides the graphs, decides the templates: every parameter and the code's version. */
export function fingerprintExtractorSettings(): string {
  return canonical({
    code: { version: EXTRACTOR_CODE_VERSION, sources: EXTRACTOR_SOURCE_DIGEST },
    params: PARAMS,
    orientation: ORIENTATION,
    gabor: GABOR,
    workingDpi: WORKING_DPI,
    retryBelow: RETRY_BELOW,
  });
}

/** The extractor's identity from its graphs' hashes (name order fixed), its parameters and its code version. */
export function fingerprintExtractorIdentity(graphHashes: Record<string, string>): { name: string; sha256: string } {
  const names = Object.keys(graphHashes).sort();
  const h = createHash('sha256').update(FINGERPRINT_EXTRACTOR_NAME);
  for (const n of names) h.update(`\n${n}:${graphHashes[n]}`);
  h.update(`\nsettings:${fingerprintExtractorSettings()}`);
  return { name: FINGERPRINT_EXTRACTOR_NAME, sha256: h.digest('hex') };
}

export interface FingerprintEngineOptions extends LoadOptions, FingerprintMatchOptions {
  /** Resolution of the images given to `extract`, dots per inch (default 500). */
  dpi?: number;
}

export class FingerprintEngine implements ModalityEngine {
  readonly name = 'fingerprint' as const;
  /** Prepared (cylinder-coded) templates by template bytes object: an evaluation compares each one many times. */
  private readonly prepared = new WeakMap<Uint8Array, PreparedFingerprint>();

  private constructor(
    readonly extractor: FingerprintExtractor,
    readonly model: { name: string; sha256: string },
    private readonly options: FingerprintEngineOptions,
  ) {}

  static async create(options: FingerprintEngineOptions = {}): Promise<FingerprintEngine> {
    const extractor = await FingerprintExtractor.load(options);
    return new FingerprintEngine(extractor, fingerprintExtractorIdentity(extractor.modelHashes), options);
  }

  async extract(image: Uint8Array): Promise<Extraction> {
    const t0 = performance.now();
    const gray = await decodeGray(image);
    const t1 = performance.now();
    const dpi = this.options.dpi ?? 500;
    const r = await this.extractor.extract(gray, { dpi });
    const t2 = performance.now();
    const record: FingerRecord = {
      width: gray.width,
      height: gray.height,
      resolution: { x: dpi, y: dpi },
      minutiae: r.minutiae.map((m) => ({ x: m.x, y: m.y, angle: m.angle, type: m.type, quality: m.quality, descriptor: m.descriptor })),
      quality: r.quality.score,
    };
    const template = encodeFingerprintTemplate({ model: this.model, quality: r.quality.score, record });
    const encode = performance.now() - t2;
    return {
      template,
      quality: r.quality,
      timings: { decode: t1 - t0, ...r.timings, encode },
      info: { minutiae: r.minutiae.length, image: { width: gray.width, height: gray.height }, dpi, model: this.model, orientation: r.orientation },
    };
  }

  private prepare(t: Uint8Array): PreparedFingerprint {
    let p = this.prepared.get(t);
    if (!p) {
      p = prepareFingerprintBytes(t);
      this.prepared.set(t, p);
    }
    return p;
  }

  compare(a: Uint8Array, b: Uint8Array): ComparisonResult {
    return compareFingerprints(this.prepare(a), this.prepare(b), this.options);
  }

  async close(): Promise<void> {
    await this.extractor.close();
  }
}
