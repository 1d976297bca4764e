/**
 * Face matcher: Euclidean distance between L2-normalised embeddings.
 *
 * Decision threshold: dlib trained its ResNet for a Euclidean distance of 0.6 between *raw* descriptors. Our
 * templates are L2-normalised; raw descriptors of this net have a mean norm of about 1.47 (measured on the faces
 * in face-api's sample photos; rerun with `npx tsx models/face/derive-template.ts`), so the same operating point is a
 * normalised distance of 0.6 / 1.47 ~= 0.41. Default: `FACE_DEFAULT_THRESHOLD` = 0.41; configurable per call and in
 * the verifier's settings. Distances at or below the threshold match.
 *
 * The score reported to generic code (evaluation, verdicts) is the cosine similarity, 1 - d^2 / 2, in [-1, 1]:
 * higher is more alike, and it is a monotonic function of the distance.
 */
import { BadTemplateError } from '../../protocol/errors.ts';
import type { ComparisonResult } from '../modality.ts';
import { decodeFaceTemplate, type FaceTemplate } from './template.ts';

export const FACE_DEFAULT_THRESHOLD = 0.41;

export function euclidean(a: Float32Array, b: Float32Array): number {
  if (a.length !== b.length) throw new BadTemplateError(`embedding dimensions differ (${a.length} vs ${b.length})`);
  let s = 0;
  for (let i = 0; i < a.length; i++) {
    const d = a[i]! - b[i]!;
    s += d * d;
  }
  return Math.sqrt(s);
}

export const distanceToScore = (d: number) => 1 - (d * d) / 2;
export const scoreToDistance = (s: number) => Math.sqrt(Math.max(0, 2 * (1 - s)));

export interface FaceMatchOptions {
  /** Maximum distance that matches (default FACE_DEFAULT_THRESHOLD). */
  threshold?: number;
  /** When given, templates made by any other model are refused. */
  trustedModelSha256?: readonly string[];
}

export function compareFaceTemplates(a: FaceTemplate, b: FaceTemplate, options: FaceMatchOptions = {}): ComparisonResult {
  for (const t of [a, b]) {
    if (options.trustedModelSha256 && !options.trustedModelSha256.includes(t.model.sha256)) {
      throw new BadTemplateError(`template made by untrusted model ${t.model.name} (sha256 ${t.model.sha256})`);
    }
  }
  if (a.model.sha256 !== b.model.sha256) {
    throw new BadTemplateError(`templates come from different models (${a.model.name} ${a.model.sha256.slice(0, 12)} vs ${b.model.name} ${b.model.sha256.slice(0, 12)})`);
  }
  const threshold = options.threshold ?? FACE_DEFAULT_THRESHOLD;
  const d = euclidean(a.embedding, b.embedding);
  return {
    score: distanceToScore(d),
    native: { name: 'euclidean_distance', value: d },
    threshold: distanceToScore(threshold),
    decision: d <= threshold ? 'match' : 'no_match',
  };
}

export function compareFaceTemplateBytes(a: Uint8Array, b: Uint8Array, options: FaceMatchOptions = {}): ComparisonResult {
  return compareFaceTemplates(decodeFaceTemplate(a), decodeFaceTemplate(b), options);
}
