/** One place to get the engine of a modality by name (CLI, evaluation, verifier). */
import { UsageError } from '../protocol/errors.ts';
import type { ModalityEngine, ModalityName } from './modality.ts';

export const MODALITIES: readonly ModalityName[] = ['face', 'fingerprint', 'iris'];

/** The template format each modality's engine writes (what attestations and the gallery name). */
export const TEMPLATE_FORMATS: Record<ModalityName, string> = {
  face: 'biokiosk-face/1',
  fingerprint: 'biokiosk-fingerprint/1',
  iris: 'biokiosk-iris/1',
};

export function parseModality(value: string): ModalityName {
  if ((MODALITIES as readonly string[]).includes(value)) return value as ModalityName;
  throw new UsageError(`unknown modality "${value}" (expected one of: ${MODALITIES.join(', ')})`);
}

export async function createEngine(name: ModalityName, options: Record<string, unknown> = {}): Promise<ModalityEngine> {
  switch (name) {
    case 'face': {
      const { FaceEngine } = await import('./face/engine.ts');
      return FaceEngine.create(options);
    }
    case 'fingerprint': {
      const { FingerprintEngine } = await import('./fingerprint/engine.ts');
      return FingerprintEngine.create(options);
    }
    case 'iris': {
      const { IrisEngine } = await import('./iris/engine.ts');
      return IrisEngine.create(options);
    }
    default:
      throw new UsageError(`modality "${name}" is not available in this build`);
  }
}
