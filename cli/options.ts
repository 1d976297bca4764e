/** Parsing helpers for CLI option values: every bad value is a UsageError naming the option. */
import type { ModalityName } from '../models/modality.ts';
import { UsageError } from '../protocol/errors.ts';

export function parseNumber(name: string, min: number, max: number, integer = false): (value: string) => number {
  return (value: string) => {
    const n = Number(value);
    if (value.trim() === '' || !Number.isFinite(n) || (integer && !Number.isInteger(n)) || n < min || n > max) {
      throw new UsageError(`${name} must be ${integer ? 'an integer' : 'a number'} from ${min} to ${max}, got "${value}"`);
    }
    return n;
  };
}

export function printJson(value: unknown): void {
  process.stdout.write(JSON.stringify(value) + '\n');
}

export function ms(v: number): string {
  return `${v.toFixed(1)} ms`;
}

/** `--dpi` describes fingerprint sensor images; face images have no fixed scale, so it is refused there. */
export function checkDpi(modality: ModalityName, dpi: number | undefined): void {
  if (dpi !== undefined && modality !== 'fingerprint') throw new UsageError(`--dpi applies to fingerprint images, not ${modality}`);
}
