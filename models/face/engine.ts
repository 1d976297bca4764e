/** The face modality as a ModalityEngine: the pipeline for extraction, the matcher for comparison. */
import type { ComparisonResult, Extraction, ModalityEngine } from '../modality.ts';
import { compareFaceTemplateBytes, type FaceMatchOptions } from './matcher.ts';
import { FacePipeline, type FacePipelineOptions } from './pipeline.ts';
import { encodeFaceTemplate } from './template.ts';

export class FaceEngine implements ModalityEngine {
  readonly name = 'face' as const;

  private constructor(
    readonly pipeline: FacePipeline,
    private readonly match: FaceMatchOptions,
  ) {}

  static async create(options: FacePipelineOptions & FaceMatchOptions = {}): Promise<FaceEngine> {
    return new FaceEngine(await FacePipeline.load(options), { threshold: options.threshold, trustedModelSha256: options.trustedModelSha256 });
  }

  async extract(image: Uint8Array): Promise<Extraction> {
    const r = await this.pipeline.extract(image);
    const t0 = performance.now();
    const template = encodeFaceTemplate({ model: r.model, quality: r.quality.score, embedding: r.embedding });
    const encode = performance.now() - t0;
    return {
      template,
      quality: r.quality,
      timings: { ...r.timings, encode },
      info: {
        faceCount: r.faceCount,
        box: r.box,
        rollDegrees: r.rollDegrees,
        image: r.image,
        model: r.model,
      },
    };
  }

  compare(a: Uint8Array, b: Uint8Array): ComparisonResult {
    return compareFaceTemplateBytes(a, b, this.match);
  }

  async close(): Promise<void> {
    await this.pipeline.close();
  }
}
