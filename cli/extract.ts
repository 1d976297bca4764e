/** `biokiosk extract`: one image in, one template out, with quality and per-stage timings. */
import { writeFile } from 'node:fs/promises';
import type { Command } from 'commander';
import { BiokioskError, UsageError } from '../protocol/errors.ts';
import { readRegularFile } from '../protocol/input-files.ts';
import { createEngine, parseModality, TEMPLATE_FORMATS } from '../models/engines.ts';
import type { Extraction, ModalityName } from '../models/modality.ts';
import { checkDpi, ms, parseNumber, printJson } from './options.ts';

export { TEMPLATE_FORMATS } from '../models/engines.ts';

interface ExtractOptions {
  modality: string;
  image: string;
  json?: boolean;
  out?: string;
  detectorSize?: number;
  minDetectionScore?: number;
  threads?: number;
  dpi?: number;
}

export function registerExtract(program: Command): void {
  program
    .command('extract')
    .description('Extract a biometric template from an image (quality, face count and per-stage timings included).')
    .requiredOption('--modality <name>', 'face | fingerprint | iris')
    .requiredOption('--image <file>', 'image file: JPEG, PNG, WebP, TIFF, BMP or Netpbm (PGM, PPM, PBM), any size')
    .option('--json', 'print one JSON object (the template file format read by `biokiosk match`)')
    .option('--out <file>', 'also write the JSON result to this file')
    .option('--detector-size <px>', 'face detector input size, a multiple of 32', parseNumber('--detector-size', 64, 1024, true))
    .option('--min-detection-score <p>', 'minimum face detector confidence', parseNumber('--min-detection-score', 0.01, 0.99))
    .option('--threads <n>', 'ONNX Runtime threads (0: one per core)', parseNumber('--threads', 0, 64, true))
    .option('--dpi <n>', 'fingerprint only: resolution of the image, dots per inch (default 500; 250-1500)', parseNumber('--dpi', 250, 1500))
    .action(async (o: ExtractOptions) => {
      const modality = parseModality(o.modality);
      checkDpi(modality, o.dpi);
      const bytes = await readInput(o.image);
      const engine = await createEngine(modality, { detectorSize: o.detectorSize, minDetectionScore: o.minDetectionScore, threads: o.threads, dpi: o.dpi });
      try {
        const result = extractionJson(modality, await engine.extract(bytes), o.image);
        if (o.out) await writeFile(o.out, JSON.stringify(result, null, 2) + '\n');
        if (o.json) printJson(result);
        else printHuman(result);
      } finally {
        await engine.close();
      }
    });
}

/** A file named on the command line: regular files only (a FIFO or device would hang the command). */
export async function readInput(path: string): Promise<Buffer> {
  return readRegularFile(path);
}

export interface ExtractionJson {
  ok: true;
  modality: ModalityName;
  format: string;
  template: string;
  source: string;
  quality: Extraction['quality'];
  retry: boolean;
  timings: Record<string, number>;
  [key: string]: unknown;
}

export function extractionJson(modality: ModalityName, e: Extraction, source: string): ExtractionJson {
  return {
    ok: true,
    modality,
    format: TEMPLATE_FORMATS[modality],
    template: Buffer.from(e.template).toString('base64'),
    source,
    ...e.info,
    quality: e.quality,
    retry: e.quality.score < e.quality.retryBelow,
    timings: Object.fromEntries(Object.entries(e.timings).map(([k, v]) => [k, Math.round(v * 100) / 100])),
  };
}

function printHuman(r: ExtractionJson): void {
  const lines = [`template   ${r.format}, ${Buffer.from(r.template, 'base64').length} bytes`];
  if (typeof r['faceCount'] === 'number') lines.push(`faces      ${r['faceCount']} seen${r['faceCount'] > 1 ? ', the largest used' : ''}`);
  const model = r['model'] as { name: string; sha256: string } | undefined;
  if (model) lines.push(`model      ${model.name} sha256 ${model.sha256.slice(0, 16)}...`);
  lines.push(`quality    ${r.quality.score}/100 (retry below ${r.quality.retryBelow})${r.retry ? '  -> RETRY CAPTURE' : ''}`);
  for (const [name, m] of Object.entries(r.quality.measures)) {
    lines.push(`  ${name.padEnd(17)} ${String(m.value).padStart(8)} ${(m.unit ?? '').padEnd(10)} score ${m.score}${m.note ? `  (${m.note})` : ''}`);
  }
  lines.push('timings    ' + Object.entries(r.timings).map(([k, v]) => `${k} ${ms(v)}`).join(', '));
  process.stdout.write(lines.join('\n') + '\n');
}

/** Reads a template file: the JSON written by `extract --json`, or a raw binary template. */
export async function readTemplateFile(path: string): Promise<{ modality?: ModalityName; template: Uint8Array }> {
  const bytes = await readInput(path);
  const text = bytes.subarray(0, 1).toString() === '{' ? bytes.toString('utf8') : null;
  if (text === null) return { template: bytes };
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new BiokioskError('BadTemplate', `${path} is not valid JSON`);
  }
  const obj = parsed as { template?: unknown; modality?: unknown };
  if (typeof obj.template !== 'string' || !/^[A-Za-z0-9+/]+={0,2}$/.test(obj.template)) {
    throw new BiokioskError('BadTemplate', `${path} has no base64 "template" field (write it with \`biokiosk extract --json\`)`);
  }
  return { modality: typeof obj.modality === 'string' ? parseModality(obj.modality) : undefined, template: Buffer.from(obj.template, 'base64') };
}
