/**
 * Having the log's checkpoints cosigned by witnesses (c2sp.org/tlog-witness), from a verifier node: each batch's
 * checkpoint is submitted to every configured witness with a consistency proof from the size that witness last
 * cosigned, and the cosignature lines it returns are stored with the checkpoint (so receipts, the tiles server
 * and the auditor find them). Nodes share the witnesses: a node that learns (409) that a witness is elsewhere
 * proves from there. Submissions are coalesced: while one is out, later batches wait and the newest checkpoint
 * goes next (a cosignature on a larger tree covers the earlier batches' entries too).
 */
import { BiokioskError } from '../protocol/errors.ts';
import { addSignatures, type NoteVerifier } from '../protocol/note.ts';
import type { AuditProofs } from './audit/log.ts';
import type { AuditReader, CheckpointRow } from './audit/store.ts';
import type { CosignedCheckpoint } from './verifier.ts';

/** What a witness answers a submission with (witness/client.ts). */
export type SubmitResult = { kind: 'cosigned'; lines: string[] } | { kind: 'conflict'; size: number } | { kind: 'refused'; status: number; message: string };

export interface WitnessSubmitter {
  /** The witness's cosigner key. */
  readonly vkey: NoteVerifier;
  submit(note: string, oldSize: number, proof: Buffer[]): Promise<SubmitResult>;
}

export interface WitnessingOptions {
  /** Told when a witness refuses a checkpoint (a 422 means it found the log inconsistent: loud). */
  onRefused?: (witness: string, status: number, message: string, treeSize: number) => void;
  now?: () => number;
}

export class Witnessing {
  /** The size each witness has cosigned, as far as this node knows. */
  private readonly sizes = new Map<string, number>();
  private running = false;
  private wanted: CheckpointRow | null = null;
  private waiters: Array<{ size: number; resolve: (c: CosignedCheckpoint | undefined) => void }> = [];
  private best: CosignedCheckpoint | undefined;

  constructor(
    private readonly audit: AuditReader,
    private readonly proofs: AuditProofs,
    readonly witnesses: readonly WitnessSubmitter[],
    private readonly options: WitnessingOptions = {},
  ) {}

  /**
   * A cosigned checkpoint covering `cp` (its size or larger), once the witnesses answered; undefined when none
   * cosigned within `timeoutMs`.
   */
  async cosign(cp: CheckpointRow, timeoutMs: number): Promise<CosignedCheckpoint | undefined> {
    if (this.witnesses.length === 0) return undefined;
    if (this.best && this.best.checkpoint.treeSize >= cp.treeSize) return this.best;
    if (!this.wanted || cp.treeSize > this.wanted.treeSize) this.wanted = cp;
    let timer: NodeJS.Timeout | undefined;
    const result = new Promise<CosignedCheckpoint | undefined>((resolve) => {
      this.waiters.push({ size: cp.treeSize, resolve });
      timer = setTimeout(() => resolve(undefined), timeoutMs);
      timer.unref();
    });
    void this.pump();
    try {
      return await result;
    } finally {
      clearTimeout(timer);
    }
  }

  private async pump(): Promise<void> {
    if (this.running) return;
    this.running = true;
    try {
      while (this.wanted) {
        const cp = this.wanted;
        this.wanted = null;
        const lines = (await Promise.all(this.witnesses.map((w) => this.submitTo(w, cp)))).flat();
        if (lines.length > 0 && (!this.best || cp.treeSize > this.best.checkpoint.treeSize)) this.best = { checkpoint: cp, lines };
        const covering = lines.length > 0 ? { checkpoint: cp, lines } : undefined;
        const still: typeof this.waiters = [];
        for (const w of this.waiters) {
          if (w.size <= cp.treeSize) w.resolve(covering);
          else still.push(w);
        }
        this.waiters = still;
      }
    } finally {
      this.running = false;
    }
  }

  /** One witness: submit with a proof from where it is, following a 409 a few times; its cosignature lines. */
  private async submitTo(w: WitnessSubmitter, cp: CheckpointRow): Promise<string[]> {
    const name = w.vkey.name;
    for (let attempt = 0; attempt < 4; attempt++) {
      const old = this.sizes.get(name) ?? 0;
      if (old > cp.treeSize) return []; // it already cosigned a larger tree (another node's batch)
      let result: SubmitResult;
      try {
        const proof = old > 0 && old < cp.treeSize ? (await this.proofs.prove([{ kind: 'consistency', from: old, to: cp.treeSize }]))[0]! : [];
        result = await w.submit(cp.note, old, proof);
      } catch (e) {
        this.options.onRefused?.(name, 0, `unreachable: ${(e as Error).message}`, cp.treeSize);
        return [];
      }
      if (result.kind === 'conflict') {
        this.sizes.set(name, result.size);
        continue;
      }
      if (result.kind === 'refused') {
        this.options.onRefused?.(name, result.status, result.message, cp.treeSize);
        return [];
      }
      this.sizes.set(name, cp.treeSize);
      const now = (this.options.now ?? Date.now)();
      for (const line of result.lines) await this.audit.addCosignature(cp.treeSize, name, line.endsWith('\n') ? line : `${line}\n`, now);
      return result.lines.map((l) => (l.endsWith('\n') ? l : `${l}\n`));
    }
    return [];
  }
}

/** The checkpoint's note with the witnesses' lines added. */
export function cosignedNote(c: CosignedCheckpoint): string {
  if (c.lines.length === 0) return c.checkpoint.note;
  try {
    return addSignatures(c.checkpoint.note, c.lines.join(''));
  } catch (e) {
    throw new BiokioskError('BadCosignature', `a witness's cosignature line cannot be added to the checkpoint: ${(e as Error).message}`, { kind: 'internal' });
  }
}
