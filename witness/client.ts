/**
 * The submitter's side of a witness: a log (a verifier node) sends its new checkpoint with a consistency proof from
 * the size the witness last cosigned, and gets back cosignature lines it has checked against the witness's key.
 * Independent of verifier/: only protocol/ is used.
 *
 * SPEC: https://c2sp.org/tlog-witness (request body; 200 with signature lines, "The client MUST ignore any
 *       cosignatures from unknown keys"; 409 with text/x.tlog.size: the size to prove from next time)
 * SPEC: https://c2sp.org/tlog-cosignature (cosignature/v1: timestamp must not be zero)
 */
import { BiokioskError } from '../protocol/errors.ts';
import { HASH_BYTES } from '../protocol/merkle.ts';
import { parseNote, SIG_COSIGNATURE_V1, verifiedSigners, type NoteVerifier } from '../protocol/note.ts';

const MAX_RESPONSE_BYTES = 64 * 1024;
const MAX_PROOF_HASHES = 63;

export type SubmitResult =
  /** `lines`: this witness's cosignature lines, each ending in a newline (for protocol/note.ts addSignatures). */
  | { kind: 'cosigned'; lines: string[]; timestamp: number }
  /** The witness's latest cosigned size is `size`: resubmit with a proof from there. */
  | { kind: 'conflict'; size: number }
  /** Any other answer (400, 403, 404, 422, 5xx...): `message` is the first line of the body. */
  | { kind: 'refused'; status: number; message: string };

/**
 * The witness could not be reached, timed out, or answered something that is not a valid answer (a 200 whose
 * cosignature does not verify is one): nothing it returned can be used.
 */
export class WitnessClientError extends BiokioskError {
  constructor(code: 'WitnessUnreachable' | 'WitnessBadResponse', message: string, options: { cause?: unknown; details?: Record<string, unknown> } = {}) {
    super(code, message, { kind: 'internal', ...options });
  }
}

export class WitnessClient {
  private readonly endpoint: string;
  private readonly timeoutMs: number;

  /** `url` is the witness's submission prefix (add-checkpoint is appended); `vkey` its cosigner key. */
  constructor(
    readonly url: string,
    readonly vkey: NoteVerifier,
    opts: { timeoutMs?: number } = {},
  ) {
    let u: URL;
    try {
      u = new URL(url);
    } catch {
      throw new BiokioskError('BadWitnessUrl', `the witness URL ${JSON.stringify(url)} is not a URL`);
    }
    if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new BiokioskError('BadWitnessUrl', `the witness URL must be http(s), got ${u.protocol}`);
    if (vkey.type !== SIG_COSIGNATURE_V1) throw new BiokioskError('BadWitnessKey', `the key of witness ${vkey.name} must be a cosignature/v1 (type 0x04) key`);
    this.endpoint = `${url.replace(/\/+$/, '')}/add-checkpoint`;
    this.timeoutMs = opts.timeoutMs ?? 10_000;
  }

  /** Submits `note` (a checkpoint signed by the log) with the consistency proof from `oldSize`. */
  async submit(note: string, oldSize: number, proof: readonly Buffer[]): Promise<SubmitResult> {
    const { text } = parseNote(note);
    if (!Number.isSafeInteger(oldSize) || oldSize < 0) throw new BiokioskError('BadWitnessRequest', `the old size must be a non-negative integer, got ${oldSize}`);
    if (proof.length > MAX_PROOF_HASHES || proof.some((h) => h.length !== HASH_BYTES)) throw new BiokioskError('BadWitnessRequest', `a consistency proof is at most ${MAX_PROOF_HASHES} hashes of ${HASH_BYTES} bytes`);
    const body = `old ${oldSize}\n${proof.map((h) => `${h.toString('base64')}\n`).join('')}\n${note}`;
    let res: Response;
    let answer: string;
    try {
      res = await fetch(this.endpoint, { method: 'POST', body, headers: { 'Content-Type': 'text/plain; charset=utf-8' }, signal: AbortSignal.timeout(this.timeoutMs) });
      answer = await readBounded(res);
    } catch (e) {
      if (e instanceof WitnessClientError) throw e;
      throw new WitnessClientError('WitnessUnreachable', `witness ${this.vkey.name} at ${this.url}: ${describe(e)}`, { cause: e });
    }
    if (res.status === 200) return this.cosigned(text, answer);
    if (res.status === 409 && (res.headers.get('content-type') ?? '').split(';')[0]!.trim() === 'text/x.tlog.size') {
      const m = /^(0|[1-9][0-9]{0,15})\n$/.exec(answer);
      if (!m || !Number.isSafeInteger(Number(m[1]))) throw new WitnessClientError('WitnessBadResponse', `witness ${this.vkey.name} answered 409 without a tree size`);
      return { kind: 'conflict', size: Number(m[1]) };
    }
    return { kind: 'refused', status: res.status, message: (answer.split('\n')[0] ?? '').slice(0, 500) };
  }

  /** The lines of the 200 answer that are this witness's, each verified over the checkpoint text. */
  private cosigned(text: string, answer: string): SubmitResult {
    const bad = (why: string) => new WitnessClientError('WitnessBadResponse', `witness ${this.vkey.name} answered 200 but ${why}`);
    let parsed;
    try {
      parsed = parseNote(`${text}\n${answer}`);
    } catch (e) {
      throw bad(`not with signature lines (${(e as Error).message})`);
    }
    const checked = verifiedSigners(parsed, [this.vkey]);
    if (checked.bad.length > 0) throw bad('its cosignature does not verify over this checkpoint');
    const timestamp = checked.cosignedAt.get(this.vkey.name);
    if (timestamp === undefined) throw bad('with no cosignature by its key');
    if (timestamp === 0) throw bad('its cosignature has no timestamp');
    const lines = parsed.signatures.filter((s) => s.name === this.vkey.name && s.keyId === this.vkey.keyId).map((s) => s.line);
    return { kind: 'cosigned', lines, timestamp };
  }
}

async function readBounded(res: Response): Promise<string> {
  if (!res.body) return '';
  const chunks: Uint8Array[] = [];
  let size = 0;
  for await (const chunk of res.body as AsyncIterable<Uint8Array>) {
    size += chunk.length;
    // Throwing out of the loop cancels the stream.
    if (size > MAX_RESPONSE_BYTES) throw new WitnessClientError('WitnessBadResponse', `the witness answered more than ${MAX_RESPONSE_BYTES} bytes`);
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString('utf8');
}

function describe(e: unknown): string {
  if (e instanceof Error && (e.name === 'TimeoutError' || e.name === 'AbortError')) return 'no answer in time';
  const cause = e instanceof Error && e.cause instanceof Error ? `: ${e.cause.message}` : '';
  return `${e instanceof Error ? e.message : String(e)}${cause}`;
}
