/** `biokiosk synth`: generates evaluation datasets that anyone can regenerate from a seed. */
import type { Command } from 'commander';
import { UsageError } from '../protocol/errors.ts';
import { parseNumber, printJson } from './options.ts';

interface SynthOptions {
  out: string;
  impressions: number;
  seed: number;
  json?: boolean;
}

export function registerSynth(program: Command): void {
  program
    .command('synth')
    .description('Generate a synthetic evaluation dataset (files named {identity}_{impression}.jpg for `biokiosk eval`).')
    .argument('<modality>', 'face (simulated captures of the faces in the shipped sample photos)')
    .requiredOption('--out <dir>', 'output folder (created if needed)')
    .option('--impressions <k>', 'impressions per identity', parseNumber('--impressions', 2, 100, true), 5)
    .option('--seed <n>', 'random seed (same seed, same files)', parseNumber('--seed', 0, 2 ** 32 - 1, true), 1)
    .option('--json', 'print one JSON object')
    .action(async (modality: string, o: SynthOptions) => {
      if (modality !== 'face') throw new UsageError(`synth supports: face (got "${modality}")`);
      const { synthesizeFaceDataset } = await import('../models/face/synth.ts');
      const r = await synthesizeFaceDataset({ out: o.out, impressions: o.impressions, seed: o.seed });
      if (o.json) printJson({ ok: true, modality, out: o.out, identities: r.identities, files: r.files.length, seed: o.seed });
      else process.stdout.write(`wrote ${r.files.length} images of ${r.identities} identities to ${o.out} (seed ${o.seed})\n`);
    });
}
