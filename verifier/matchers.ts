/**
 * Template matchers by format: the verifier matches templates, it never extracts, so it needs no ONNX models,
 * only the pure matchers of models/. Other modalities plug in here by their template format.
 */
import { BadTemplateError } from '../protocol/errors.ts';
import { compareFaceTemplateBytes, FACE_DEFAULT_THRESHOLD } from '../models/face/matcher.ts';
import { decodeFaceTemplate, FACE_TEMPLATE_FORMAT } from '../models/face/template.ts';
import { compareFingerprints, FINGERPRINT_DEFAULT_THRESHOLD, prepareFingerprintBytes, type PreparedFingerprint } from '../models/fingerprint/matcher/mcc.ts';
import { decodeFingerprintTemplate, FINGERPRINT_TEMPLATE_FORMAT } from '../models/fingerprint/template.ts';
import { compareIrises, IRIS_DEFAULT_THRESHOLD, prepareIrisTemplate, type PreparedIris } from '../models/iris/matcher.ts';
import { decodeIrisTemplate, IRIS_TEMPLATE_FORMAT } from '../models/iris/template.ts';

export interface MatchOutcome {
  decision: 'match' | 'no_match';
  score: number;
  native: { name: string; value: number };
}

export interface TemplateMatcher {
  format: string;
  modality: string;
  /** The sha256 of the model that made the template (checked against the allowed list before matching). */
  modelOf(template: Uint8Array): string;
  match(probe: Uint8Array, enrolled: Uint8Array): MatchOutcome;
}

export function faceMatcher(threshold = FACE_DEFAULT_THRESHOLD): TemplateMatcher {
  return {
    format: FACE_TEMPLATE_FORMAT,
    modality: 'face',
    modelOf: (t) => decodeFaceTemplate(t).model.sha256,
    match: (probe, enrolled) => {
      const r = compareFaceTemplateBytes(probe, enrolled, { threshold });
      return { decision: r.decision, score: r.score, native: r.native };
    },
  };
}

export function fingerprintMatcher(threshold = FINGERPRINT_DEFAULT_THRESHOLD): TemplateMatcher {
  // Cylinder codes of enrolled templates, kept: preparing one costs milliseconds, comparing two about 50 µs.
  const enrolledCache = new Map<string, PreparedFingerprint>();
  const preparedEnrolled = (t: Uint8Array): PreparedFingerprint => {
    const key = Buffer.from(t.buffer, t.byteOffset, t.byteLength).toString('base64');
    let p = enrolledCache.get(key);
    if (!p) {
      p = prepareFingerprintBytes(t);
      if (enrolledCache.size >= 4096) enrolledCache.delete(enrolledCache.keys().next().value!);
      enrolledCache.set(key, p);
    }
    return p;
  };
  return {
    format: FINGERPRINT_TEMPLATE_FORMAT,
    modality: 'fingerprint',
    modelOf: (t) => decodeFingerprintTemplate(t).model.sha256,
    match: (probe, enrolled) => {
      const r = compareFingerprints(prepareFingerprintBytes(probe), preparedEnrolled(enrolled), { threshold });
      return { decision: r.decision, score: r.score, native: r.native };
    },
  };
}

export function irisMatcher(threshold = IRIS_DEFAULT_THRESHOLD): TemplateMatcher {
  // Enrolled codes stay prepared (copied into the wasm matcher's memory, ~4.6 KB each); a probe is prepared per match.
  const enrolledCache = new Map<string, PreparedIris>();
  const preparedEnrolled = (t: Uint8Array): PreparedIris => {
    const key = Buffer.from(t.buffer, t.byteOffset, t.byteLength).toString('base64');
    let p = enrolledCache.get(key);
    if (!p) {
      p = prepareIrisTemplate(t);
      if (enrolledCache.size >= 4096) enrolledCache.delete(enrolledCache.keys().next().value!);
      enrolledCache.set(key, p);
    }
    return p;
  };
  return {
    format: IRIS_TEMPLATE_FORMAT,
    modality: 'iris',
    modelOf: (t) => decodeIrisTemplate(t).model.sha256,
    match: (probe, enrolled) => {
      const r = compareIrises(prepareIrisTemplate(probe), preparedEnrolled(enrolled), { threshold });
      return { decision: r.decision, score: r.score, native: r.native };
    },
  };
}

export function matcherRegistry(matchers: TemplateMatcher[]): Map<string, TemplateMatcher> {
  return new Map(matchers.map((m) => [m.format, m]));
}

/**
 * Every matcher this build knows, with default thresholds: what a precheck worker uses to read a template's
 * model (`modelOf` does not depend on the threshold; matching itself stays on the main thread).
 */
export function builtinMatchers(): Map<string, TemplateMatcher> {
  return matcherRegistry([faceMatcher(), fingerprintMatcher(), irisMatcher()]);
}

export { BadTemplateError };
