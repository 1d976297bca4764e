/**
 * The gallery's templates encrypted at rest (AES-256-GCM), so a copy of verifier.db alone reveals no biometric.
 * Each row's ciphertext is authenticated with the row it belongs to (subject, modality, format, model): moving a
 * template to another subject's row, or editing the row around it, makes it fail to open.
 *
 *   blob = "BKG1" || iv (12) || ciphertext || tag (16)
 */
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { BiokioskError } from '../protocol/errors.ts';

const MAGIC = Buffer.from('BKG1', 'ascii');
export const GALLERY_KEY_BYTES = 32;

export interface GalleryRowId {
  subject: string;
  modality: string;
  templateFormat: string;
  modelSha256: string;
}

function aad(row: GalleryRowId): Buffer {
  return Buffer.from(JSON.stringify(['biokiosk-gallery/1', row.subject, row.modality, row.templateFormat, row.modelSha256]), 'utf8');
}

export function isSealedTemplate(blob: Uint8Array): boolean {
  return blob.byteLength >= MAGIC.length + 12 + 16 && Buffer.from(blob.buffer, blob.byteOffset, MAGIC.length).equals(MAGIC);
}

export class GalleryCipher {
  private readonly key: Buffer;

  constructor(key: Uint8Array) {
    if (key.byteLength !== GALLERY_KEY_BYTES) throw new BiokioskError('BadGalleryKey', `the gallery key must be ${GALLERY_KEY_BYTES} bytes, not ${key.byteLength}`, { kind: 'internal' });
    this.key = Buffer.from(key);
  }

  seal(template: Uint8Array, row: GalleryRowId): Buffer {
    const iv = randomBytes(12);
    const c = createCipheriv('aes-256-gcm', this.key, iv);
    c.setAAD(aad(row));
    const ct = Buffer.concat([c.update(template), c.final()]);
    return Buffer.concat([MAGIC, iv, ct, c.getAuthTag()]);
  }

  open(blob: Uint8Array, row: GalleryRowId): Uint8Array {
    if (!isSealedTemplate(blob)) throw tampered(row, 'it is not an encrypted gallery template');
    const b = Buffer.from(blob.buffer, blob.byteOffset, blob.byteLength);
    const iv = b.subarray(4, 16);
    const tag = b.subarray(b.length - 16);
    try {
      const d = createDecipheriv('aes-256-gcm', this.key, iv);
      d.setAAD(aad(row));
      d.setAuthTag(tag);
      return new Uint8Array(Buffer.concat([d.update(b.subarray(16, b.length - 16)), d.final()]));
    } catch {
      throw tampered(row, 'it does not decrypt with this verifier\'s gallery key for this row');
    }
  }
}

function tampered(row: GalleryRowId, why: string): BiokioskError {
  return new BiokioskError('GalleryTampered', `the ${row.modality} template of subject ${JSON.stringify(row.subject).slice(0, 80)} cannot be used: ${why} (moved, edited, or another verifier's key)`, { kind: 'internal' });
}
