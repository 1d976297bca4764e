/** The iris extractor's typed errors (BadImage is the shared one from protocol/errors.ts). */
import { BiokioskError } from '../../protocol/errors.ts';

export { BadImageError } from '../../protocol/errors.ts';

/** No pupil and limbus pair could be found: not an eye, closed, out of focus, or the wrong kind of image. */
export class NoIrisFoundError extends BiokioskError {
  constructor(reason: string, details?: Record<string, unknown>) {
    super('NoIrisFound', `no iris was found in the image: ${reason}`, { kind: 'input', details });
  }
}
