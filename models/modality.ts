/**
 * What every modality (face, fingerprint, iris) offers to the CLI, the evaluation and the verifier:
 * extract a template from an image, compare two templates, decide.
 *
 * Scores are similarities: higher means more alike. Each modality documents how its score relates to its native
 * measure (the face matcher's score is derived from Euclidean distance) and its default decision threshold.
 */
export type ModalityName = 'face' | 'fingerprint' | 'iris';

export interface QualityReport {
  /** 0-100, higher is better. */
  score: number;
  /** Below this the capture should be retried. */
  retryBelow: number;
  /** The individual measures the score was made from, each with its value and its own 0-100 sub-score. */
  measures: Record<string, { value: number; score: number; unit?: string; note?: string }>;
}

export interface Extraction {
  /** The encoded template (the modality's versioned binary format). */
  template: Uint8Array;
  quality: QualityReport;
  /** Milliseconds per named stage, in pipeline order. */
  timings: Record<string, number>;
  /** Modality-specific facts worth reporting (e.g. how many faces were seen). */
  info: Record<string, unknown>;
}

export interface ComparisonResult {
  score: number;
  /** The modality's native measure (e.g. Euclidean distance for faces), reported alongside the score. */
  native: { name: string; value: number };
  threshold: number;
  decision: 'match' | 'no_match';
}

export interface ModalityEngine {
  readonly name: ModalityName;
  /** Extract from an encoded image (JPEG, PNG, WebP, TIFF, BMP ...). Throws typed errors for bad input. */
  extract(image: Uint8Array): Promise<Extraction>;
  /** Similarity of two encoded templates; throws BadTemplateError when either cannot be read or trusted. */
  compare(a: Uint8Array, b: Uint8Array): ComparisonResult;
  /** Release native resources (ONNX sessions). */
  close(): Promise<void>;
}
