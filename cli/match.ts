/** `biokiosk match`: compares two template files and decides. */
import type { Command } from 'commander';
import { UsageError } from '../protocol/errors.ts';
import { createEngine, parseModality } from '../models/engines.ts';
import { readTemplateFile } from './extract.ts';
import { parseNumber, printJson } from './options.ts';

interface MatchOptions {
  modality: string;
  json?: boolean;
  threshold?: number;
}

export function registerMatch(program: Command): void {
  program
    .command('match')
    .description('Compare two templates (files written by `biokiosk extract --json`) and print distance, score and decision.')
    .argument('<a>', 'first template file')
    .argument('<b>', 'second template file')
    .requiredOption('--modality <name>', 'face | fingerprint | iris')
    .option('--threshold <value>', "decision threshold in the modality's native measure (face: maximum Euclidean distance, default 0.41; fingerprint: minimum MCC score; iris: maximum normalised Hamming distance, default 0.34)", parseNumber('--threshold', 0, 1000))
    .option('--json', 'print one JSON object')
    .action(async (a: string, b: string, o: MatchOptions) => {
      const modality = parseModality(o.modality);
      const [ta, tb] = await Promise.all([readTemplateFile(a), readTemplateFile(b)]);
      for (const [path, t] of [[a, ta], [b, tb]] as const) {
        if (t.modality && t.modality !== modality) throw new UsageError(`${path} holds a ${t.modality} template, not ${modality}`);
      }
      const { compareTemplates } = await matcherFor(modality);
      const r = compareTemplates(ta.template, tb.template, o.threshold);
      if (o.json) printJson({ ok: true, modality, ...r });
      else {
        process.stdout.write(
          `${r.decision === 'match' ? 'MATCH' : 'NO MATCH'}  ${r.native.name} ${r.native.value.toFixed(4)} (threshold ${r.nativeThreshold}), score ${r.score.toFixed(4)}\n`,
        );
      }
    });
}

/** Matching needs no models loaded: only the matcher of the modality. */
async function matcherFor(modality: ReturnType<typeof parseModality>) {
  if (modality === 'face') {
    const m = await import('../models/face/matcher.ts');
    return {
      compareTemplates: (a: Uint8Array, b: Uint8Array, threshold?: number) => {
        const t = threshold ?? m.FACE_DEFAULT_THRESHOLD;
        return { ...m.compareFaceTemplateBytes(a, b, { threshold: t }), nativeThreshold: t };
      },
    };
  }
  if (modality === 'fingerprint') {
    const m = await import('../models/fingerprint/matcher/mcc.ts');
    return {
      compareTemplates: (a: Uint8Array, b: Uint8Array, threshold?: number) => {
        const t = threshold ?? m.FINGERPRINT_DEFAULT_THRESHOLD;
        return { ...m.compareFingerprintTemplateBytes(a, b, { threshold: t }), nativeThreshold: t };
      },
    };
  }
  if (modality === 'iris') {
    const m = await import('../models/iris/matcher.ts');
    return {
      compareTemplates: (a: Uint8Array, b: Uint8Array, threshold?: number) => {
        const t = threshold ?? m.IRIS_DEFAULT_THRESHOLD;
        return { ...m.compareIrisTemplateBytes(a, b, { threshold: t }), nativeThreshold: t };
      },
    };
  }
  // Other modalities come with their engines.
  await createEngine(modality);
  throw new UsageError(`no matcher for ${modality}`);
}
