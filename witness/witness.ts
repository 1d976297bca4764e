/**
 * The witness: cosigns a log's checkpoint only when it is consistent with every checkpoint of that log it cosigned
 * before, so a log that shows one history to some parties and another to others (or rewrites its past) cannot get
 * both cosigned. Run by a party other than the log's operator (an insurer, a hospital, a regulator).
 *
 * SPEC: https://c2sp.org/tlog-witness (POST add-checkpoint: "old <size>" line, consistency proof lines, an empty
 *       line, the checkpoint; 404 unknown origin, 403 no valid trusted signature, 400 old size > size, 409 with
 *       text/x.tlog.size when the old size is not the latest cosigned size, 422 when the proof does not verify,
 *       when the sizes match and the roots do not, and for a size-0 checkpoint with another root than the empty
 *       tree's; checking and persisting atomically per log)
 * SPEC: https://c2sp.org/tlog-cosignature (cosignature/v1, timestamp = POSIX seconds, never zero)
 * SPEC: https://c2sp.org/tlog-checkpoint, https://c2sp.org/signed-note (unknown signatures ignored)
 * SPEC: RFC 6962 / RFC 9162 2.1.4 (consistency proofs; protocol/merkle.ts)
 *
 * HTTP lives in server.ts: this class maps a request body to a status, a content type and a body.
 */
import { createHash } from 'node:crypto';
import { constants } from 'node:fs';
import { open } from 'node:fs/promises';
import { join } from 'node:path';
import { BiokioskError } from '../protocol/errors.ts';
import { emptyRoot, HASH_BYTES, verifyConsistency } from '../protocol/merkle.ts';
import { formatVkey, parseCheckpointText, parseNote, SIG_COSIGNATURE_V1, verifiedSigners, type Checkpoint, type NoteSigner, type NoteSignature, type NoteVerifier } from '../protocol/note.ts';
import { ensurePrivateDir } from '../protocol/private-files.ts';
import { cosignedNote, type CosignedCheckpoint, type WitnessState } from './state.ts';

/** Request bodies are bounded before parsing (a note is at most 16 KiB; 63 proof lines are 2.8 KiB). */
export const MAX_REQUEST_BYTES = 64 * 1024;
/** SPEC: tlog-witness: "The client MUST NOT send more than 63 consistency proof lines". */
export const MAX_PROOF_HASHES = 63;
export const SIZE_CONTENT_TYPE = 'text/x.tlog.size';
const TEXT = 'text/plain; charset=utf-8';

export interface WitnessResponse {
  status: number;
  contentType: string;
  body: string;
}

/**
 * What the witness shouts about: a log key signed a checkpoint that is not (or not shown to be) an extension of
 * the one the witness cosigned.
 * - `fork`: same size, another root (or a size-0 tree whose root is not the empty tree's): proof that the log
 *   signed two different trees of one size.
 * - `inconsistent`: the consistency proof from the cosigned size does not verify: the log rewrote its history, or
 *   the submitter sent a wrong proof (the witness cannot tell which; the evidence lets a person find out).
 */
export interface WitnessAlert {
  kind: 'fork' | 'inconsistent';
  origin: string;
  message: string;
  cosigned: { treeSize: number; rootHash: string };
  submitted: { treeSize: number; rootHash: string };
  /** Where the evidence was written; undefined when the same evidence was already written (or writing failed). */
  evidenceFile?: string;
  evidenceError?: string;
}

export interface WitnessOptions {
  /** Origin -> the log's keys (several during a key rotation; a signature by any one of them is enough). */
  logs: ReadonlyMap<string, readonly NoteVerifier[]>;
  state: WitnessState;
  /** The witness's cosigner key (type SIG_COSIGNATURE_V1). */
  signer: NoteSigner;
  /** POSIX seconds (default: the system clock). */
  now?: () => number;
  onAlert?: (alert: WitnessAlert) => void;
  onCosigned?: (c: CosignedCheckpoint) => void;
}

/** A request body that does not follow the add-checkpoint format: 400. */
export class WitnessRequestError extends BiokioskError {
  constructor(message: string) {
    super('BadWitnessRequest', message, { kind: 'input' });
  }
}

/** A parsed add-checkpoint body (structure only). */
export interface AddCheckpointRequest {
  oldSize: number;
  proof: Buffer[];
  note: string;
  text: string;
  signatures: NoteSignature[];
  checkpoint: Checkpoint;
}

export class Witness {
  private readonly logs: ReadonlyMap<string, readonly NoteVerifier[]>;
  private readonly state: WitnessState;
  private readonly signer: NoteSigner;
  private readonly now: () => number;
  private readonly onAlert: ((a: WitnessAlert) => void) | undefined;
  private readonly onCosigned: ((c: CosignedCheckpoint) => void) | undefined;
  /** The tail of each origin's queue: one request per log at a time, so check-then-persist is atomic. */
  private readonly queues = new Map<string, Promise<unknown>>();
  /** Digests of evidence already written, so a replayed bad checkpoint does not fill the disk. */
  private readonly evidenceSeen = new Set<string>();

  constructor(opts: WitnessOptions) {
    if (opts.signer.type !== SIG_COSIGNATURE_V1) throw new BiokioskError('BadWitnessKey', 'a witness cosigns with a cosignature/v1 (type 0x04) key', { kind: 'internal' });
    for (const [origin, keys] of opts.logs) {
      if (keys.length === 0) throw new BiokioskError('BadWitnessConfig', `log ${origin} has no keys`);
    }
    this.logs = new Map([...opts.logs].map(([o, k]) => [o, [...k]]));
    this.state = opts.state;
    this.signer = opts.signer;
    this.now = opts.now ?? (() => Math.floor(Date.now() / 1000));
    this.onAlert = opts.onAlert;
    this.onCosigned = opts.onCosigned;
  }

  get name(): string {
    return this.signer.name;
  }

  get vkey(): string {
    return this.signer.vkey;
  }

  origins(): string[] {
    return [...this.logs.keys()];
  }

  /** The latest cosigned checkpoint of `origin` as a full note (its log signatures and this witness's cosignature). */
  latest(origin: string): string | undefined {
    const c = this.state.get(origin);
    return c && cosignedNote(c);
  }

  /** POST add-checkpoint: the request body in, the response out. Throws only on internal failures (state I/O). */
  async addCheckpoint(body: string): Promise<WitnessResponse> {
    let req: AddCheckpointRequest;
    try {
      req = parseRequest(body);
    } catch (e) {
      if (e instanceof BiokioskError && e.kind === 'input') return text(400, e.message);
      throw e;
    }
    const { origin, treeSize } = req.checkpoint;
    const keys = this.logs.get(origin);
    if (!keys) return text(404, `this witness does not know the log ${JSON.stringify(origin.slice(0, 200))}`);
    // Signature checks are pure CPU: done before queueing, so a flood of forgeries does not delay the log.
    const signed = verifiedSigners(req, keys);
    if (signed.bad.length > 0) return text(403, `the signature by ${signed.bad.join(', ')} does not verify`);
    if (signed.names.size === 0) return text(403, `the checkpoint carries no signature by a key of the log ${origin}`);
    if (req.oldSize > treeSize) return text(400, `old size ${req.oldSize} is larger than the checkpoint size ${treeSize}`);
    // Keep the log's verified signatures only: the stored note is what monitors get, other witnesses' lines
    // were not checked here.
    const logLines = req.signatures.filter((s) => keys.some((k) => k.name === s.name && k.keyId === s.keyId)).map((s) => s.line);
    return this.serialised(origin, () => this.decide(req, logLines));
  }

  private serialised<T>(origin: string, fn: () => Promise<T>): Promise<T> {
    const run = (this.queues.get(origin) ?? Promise.resolve()).then(fn);
    const tail = run.catch(() => undefined);
    this.queues.set(origin, tail);
    void tail.then(() => {
      if (this.queues.get(origin) === tail) this.queues.delete(origin);
    });
    return run;
  }

  /** The checks that need the state, in the order the spec lists them; runs alone for its origin. */
  private async decide(req: AddCheckpointRequest, logLines: string[]): Promise<WitnessResponse> {
    const cp = req.checkpoint;
    const prev = this.state.get(cp.origin);
    const cosignedSize = prev?.treeSize ?? 0;
    const cosignedRoot = prev?.rootHash ?? emptyRoot();
    // A validly signed tree of the cosigned size with another root proves a fork, whatever old size the
    // submitter claims: raise it even when the answer is 409.
    const fork = (prev !== undefined || cp.treeSize === 0) && cp.treeSize === cosignedSize && !cp.rootHash.equals(cosignedRoot);
    if (fork) await this.alert('fork', req, prev);
    if (req.oldSize !== cosignedSize) return { status: 409, contentType: SIZE_CONTENT_TYPE, body: `${cosignedSize}\n` };
    if (fork) return text(422, cp.treeSize === 0 ? 'a checkpoint of size 0 must have the empty tree\'s root hash' : `the root hash differs from the one cosigned at size ${cosignedSize}`);
    if (cosignedSize === 0 && req.proof.length > 0) return text(422, 'the consistency proof from size 0 must be empty');
    if (cosignedSize === cp.treeSize && req.proof.length > 0) return text(422, 'the consistency proof between equal sizes must be empty');
    if (cosignedSize > 0 && cosignedSize < cp.treeSize && !verifyConsistency(cosignedSize, cp.treeSize, cosignedRoot, cp.rootHash, req.proof)) {
      await this.alert('inconsistent', req, prev);
      return text(422, `the consistency proof from size ${cosignedSize} to ${cp.treeSize} does not verify`);
    }
    // Never earlier than the last cosignature of this log: a clock stepped back must not make an older
    // cosignature claim a larger tree than a newer one.
    const at = Math.max(Math.floor(this.now()), prev?.cosignedAt ?? 0, 1);
    const cosignature = this.signer.cosign(req.text, at);
    const record: CosignedCheckpoint = { origin: cp.origin, treeSize: cp.treeSize, rootHash: cp.rootHash, note: `${req.text}\n${logLines.join('')}`, cosignature, cosignedAt: at };
    await this.state.commit(record);
    notify(this.onCosigned, record);
    return { status: 200, contentType: TEXT, body: cosignature };
  }

  private async alert(kind: WitnessAlert['kind'], req: AddCheckpointRequest, prev: CosignedCheckpoint | undefined): Promise<void> {
    const cp = req.checkpoint;
    const cosigned = { treeSize: prev?.treeSize ?? 0, rootHash: (prev?.rootHash ?? emptyRoot()).toString('base64') };
    const submitted = { treeSize: cp.treeSize, rootHash: cp.rootHash.toString('base64') };
    const message =
      kind === 'fork'
        ? `log ${cp.origin} signed two different trees of size ${cp.treeSize}: root ${cosigned.rootHash} (cosigned${prev ? '' : ': the empty tree'}) and root ${submitted.rootHash}; not cosigned`
        : `log ${cp.origin} signed size ${submitted.treeSize} (root ${submitted.rootHash}) but the consistency proof from the cosigned size ${cosigned.treeSize} (root ${cosigned.rootHash}) does not verify: the log rewrote its history or the submitter sent a wrong proof; not cosigned`;
    const alert: WitnessAlert = { kind, origin: cp.origin, message, cosigned, submitted };
    try {
      alert.evidenceFile = await this.writeEvidence(alert, req, prev);
    } catch (e) {
      alert.evidenceError = (e as Error).message;
    }
    notify(this.onAlert, alert);
  }

  /** DIR/alerts/<timestamp>-<origin>.txt: both notes and the proof, enough for anyone to check the claim. */
  private async writeEvidence(alert: WitnessAlert, req: AddCheckpointRequest, prev: CosignedCheckpoint | undefined): Promise<string | undefined> {
    const old = prev ? cosignedNote(prev) : '(none: the witness never cosigned this log; its tree of size 0 is the empty tree)\n';
    const digest = createHash('sha256').update(old).update('\0').update(req.note).update('\0').update(Buffer.concat(req.proof)).digest('hex');
    if (this.evidenceSeen.has(digest)) return undefined;
    const body = [
      `biokiosk witness ${this.signer.name}: ${alert.kind.toUpperCase()}`,
      alert.message,
      `detected at ${new Date().toISOString()}`,
      `evidence digest ${digest}`,
      `witness key ${this.signer.vkey}`,
      ...(this.logs.get(alert.origin) ?? []).map((k) => `log key ${formatVkey(k)}`),
      '',
      '--- the checkpoint this witness cosigned ---',
      old,
      `--- the checkpoint submitted (old ${req.oldSize}, ${req.proof.length} proof hashes) ---`,
      req.note,
      '--- the consistency proof submitted (base64, one hash a line) ---',
      ...(req.proof.length > 0 ? req.proof.map((h) => h.toString('base64')) : ['(none)']),
      '',
    ].join('\n');
    const dir = join(this.state.dir, 'alerts');
    ensurePrivateDir(dir);
    const stamp = new Date().toISOString().replace(/[:.]/g, '-');
    const origin = alert.origin.replace(/[^A-Za-z0-9._-]+/g, '_').slice(0, 100);
    for (let n = 0; ; n++) {
      const path = join(dir, `${stamp}-${origin}${n ? `-${n}` : ''}.txt`);
      let fh;
      try {
        fh = await open(path, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === 'EEXIST' && n < 100) continue;
        throw e;
      }
      try {
        await fh.writeFile(body, 'utf8');
        await fh.sync();
      } finally {
        await fh.close();
      }
      if (this.evidenceSeen.size >= 1024) this.evidenceSeen.clear();
      this.evidenceSeen.add(digest);
      return path;
    }
  }
}

/** A listener's failure must not turn a decided (and persisted) answer into an error. */
function notify<T>(listener: ((v: T) => void) | undefined, value: T): void {
  try {
    listener?.(value);
  } catch {
    // the listener's own problem
  }
}

function text(status: number, message: string): WitnessResponse {
  return { status, contentType: TEXT, body: `${message.replace(/\n/g, ' ')}\n` };
}

const OLD_LINE = /^old (0|[1-9][0-9]{0,15})\n/;
const HASH_LINE = /^[A-Za-z0-9+/]{43}=$/;

/** The add-checkpoint body: structure only (signatures and consistency are checked by the caller). */
export function parseRequest(body: string): AddCheckpointRequest {
  if (body.length > MAX_REQUEST_BYTES || Buffer.byteLength(body, 'utf8') > MAX_REQUEST_BYTES) throw new WitnessRequestError(`the request body is larger than ${MAX_REQUEST_BYTES} bytes`);
  const m = OLD_LINE.exec(body);
  if (!m || !Number.isSafeInteger(Number(m[1]))) throw new WitnessRequestError('the request must start with "old <size>" (decimal, no leading zeroes) and a newline');
  const oldSize = Number(m[1]);
  const proof: Buffer[] = [];
  let at = m[0].length;
  for (;;) {
    const end = body.indexOf('\n', at);
    if (end < 0) throw new WitnessRequestError('the request ends before the empty line that precedes the checkpoint');
    const line = body.slice(at, end);
    at = end + 1;
    if (line === '') break;
    if (proof.length === MAX_PROOF_HASHES) throw new WitnessRequestError(`a consistency proof has at most ${MAX_PROOF_HASHES} lines`);
    const hash = Buffer.from(line, 'base64');
    if (!HASH_LINE.test(line) || hash.length !== HASH_BYTES || hash.toString('base64') !== line) throw new WitnessRequestError(`consistency proof line ${proof.length + 1} is not a base64 ${HASH_BYTES}-byte hash`);
    proof.push(hash);
  }
  const note = body.slice(at);
  const parsed = parseNote(note);
  const checkpoint = parseCheckpointText(parsed.text);
  // SPEC: tlog-checkpoint: extension lines, if any, are non-empty.
  if (parsed.text.includes('\n\n')) throw new WitnessRequestError('the checkpoint has an empty line');
  // One encoding per signature: the stored note is exactly what was verified.
  for (const s of parsed.signatures) {
    const b64 = s.line.slice(s.line.lastIndexOf(' ') + 1, -1);
    if (Buffer.from(b64, 'base64').toString('base64') !== b64) throw new WitnessRequestError(`the signature of ${s.name.slice(0, 100)} is not canonical base64`);
  }
  return { oldSize, proof, note, text: parsed.text, signatures: parsed.signatures, checkpoint };
}
