/** `biokiosk synth`: generates evaluation datasets that anyone can regenerate from a seed. */
import type { Command } from 'commander';
import { UsageError } from '../protocol/errors.ts';
import { ms, parseNumber, printJson } from './options.ts';

interface SynthOptions {
  out: string;
  impressions?: number;
  fingers?: number;
  width?: number;
  height?: number;
  seed: number;
  json?: boolean;
  eyes?: number;
  samples?: number;
}

const MODALITIES = ['face', 'fingerprint', 'iris'];

export function registerSynth(program: Command): void {
  program
    .command('synth')
    .description('Generate a synthetic evaluation dataset (files named {identity}_{impression}.{jpg|png} for `biokiosk eval`).')
    .argument('<modality>', 'face (simulated captures of the faces in the shipped sample photos), fingerprint (SFinGe-style synthetic fingers, PNG at 500 dpi) or iris (synthetic NIR eye images, PNG 320x280)')
    .requiredOption('--out <dir>', 'output folder (created if needed)')
    .option('--impressions <k>', 'impressions per identity (default: face 5, fingerprint 8)', parseNumber('--impressions', 2, 100, true))
    .option('--fingers <n>', 'fingerprint only: number of fingers (default 100)', parseNumber('--fingers', 2, 100_000, true))
    .option('--width <px>', 'fingerprint only: image width (default 256, the R307 sensor)', parseNumber('--width', 64, 2048, true))
    .option('--height <px>', 'fingerprint only: image height (default 288)', parseNumber('--height', 64, 2048, true))
    .option('--eyes <n>', 'iris only: number of eyes (default 100)', parseNumber('--eyes', 2, 100_000, true))
    .option('--samples <k>', 'iris only: captures per eye (default 6)', parseNumber('--samples', 2, 100, true))
    .option('--seed <n>', 'random seed (same seed, same files)', parseNumber('--seed', 0, 2 ** 32 - 1, true), 1)
    .option('--json', 'print one JSON object')
    .action(async (modality: string, o: SynthOptions) => {
      if (!MODALITIES.includes(modality)) throw new UsageError(`synth supports: ${MODALITIES.join(', ')} (got "${modality}")`);
      if (modality === 'iris') {
        for (const flag of ['fingers', 'width', 'height', 'impressions'] as const) if (o[flag] !== undefined) throw new UsageError(`--${flag} is not an option of synth iris (use --eyes and --samples)`);
        const { synthesizeIrisDataset } = await import('../models/iris/synth/dataset.ts');
        const r = await synthesizeIrisDataset({ out: o.out, eyes: o.eyes ?? 100, samples: o.samples ?? 6, seed: o.seed });
        if (o.json) printJson({ ok: true, modality, out: o.out, identities: o.eyes ?? 100, files: r.files.length, seed: o.seed, timings: { totalMs: r.ms } });
        else process.stdout.write(`wrote ${r.files.length} images of ${o.eyes ?? 100} eyes to ${o.out} (seed ${o.seed}) in ${ms(r.ms)}\n`);
        return;
      }
      if (o.eyes !== undefined || o.samples !== undefined) throw new UsageError('--eyes and --samples are for synth iris only');
      if (modality === 'face') {
        for (const flag of ['fingers', 'width', 'height'] as const) if (o[flag] !== undefined) throw new UsageError(`--${flag} is for synth fingerprint only`);
        const { synthesizeFaceDataset } = await import('../models/face/synth.ts');
        const r = await synthesizeFaceDataset({ out: o.out, impressions: o.impressions ?? 5, seed: o.seed });
        if (o.json) printJson({ ok: true, modality, out: o.out, identities: r.identities, files: r.files.length, seed: o.seed });
        else process.stdout.write(`wrote ${r.files.length} images of ${r.identities} identities to ${o.out} (seed ${o.seed})\n`);
        return;
      }
      const { synthesizeFingerprintDataset } = await import('../models/fingerprint/synth/dataset.ts');
      const r = await synthesizeFingerprintDataset({ out: o.out, fingers: o.fingers ?? 100, impressions: o.impressions ?? 8, seed: o.seed, width: o.width, height: o.height });
      const perMaster = r.ms.masters / r.fingers;
      const perImpression = r.ms.impressions / (r.fingers * r.impressions);
      if (o.json) {
        printJson({ ok: true, modality, out: o.out, identities: r.fingers, files: r.files.length, seed: o.seed, classes: r.classes, timings: { totalMs: r.ms.total, masterMs: perMaster, impressionMs: perImpression, workers: r.workers } });
      } else {
        process.stdout.write(`wrote ${r.files.length} images of ${r.fingers} fingers to ${o.out} (seed ${o.seed}) in ${ms(r.ms.total)}; ${ms(perMaster)} per master, ${ms(perImpression)} per impression on ${r.workers} workers\n`);
      }
    });
}
