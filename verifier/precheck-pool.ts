/**
 * Prechecks on worker threads, so that one verifier process uses every core: signature verification and template
 * decryption (about 0.4 ms of CPU per attestation) run on the workers while the main thread, which alone holds
 * the store, decides the previous batch. A batch is split into one contiguous chunk per worker.
 *
 * A worker that fails (an exception escaping the checks, or the thread dying) fails the batches it was working
 * on: their transaction never starts, and the kiosks' outboxes send them again. A dead worker is replaced.
 */
import type { JsonWebKey, KeyObject } from 'node:crypto';
import { Worker } from 'node:worker_threads';
import { BiokioskError } from '../protocol/errors.ts';
import { workerEntry } from '../protocol/runtime.ts';
import type { PrecheckConfig, PrecheckResult, PrecheckTask } from './precheck.ts';

/** Runs the stateless checks for a batch, in order. */
export interface Prechecker {
  run(tasks: PrecheckTask[]): Promise<PrecheckResult[]>;
  close(): Promise<void>;
}

/** What a worker is started with (structured-clone safe). */
export interface PrecheckWorkerInit {
  config: PrecheckConfig;
  fleetKey: JsonWebKey | KeyObject;
  /** Template formats the worker must read (built-in matchers only; see matchers.ts). */
  formats: string[];
}

export type WorkerRequest = { id: number; tasks: PrecheckTask[] };
export type WorkerReply = { id: number; results: PrecheckResult[] } | { id: number; error: string } | { ready: true } | { initError: string };

const BOOTSTRAP = workerEntry(import.meta.url, 'precheck-worker');

interface Slot {
  worker: Worker;
  ready: Promise<void>;
  inflight: Map<number, { resolve: (r: PrecheckResult[]) => void; reject: (e: Error) => void }>;
}

export class PrecheckPool implements Prechecker {
  private readonly slots: Slot[] = [];
  private nextId = 1;
  private closed = false;

  private constructor(
    private readonly init: PrecheckWorkerInit,
    size: number,
  ) {
    for (let i = 0; i < size; i++) this.slots.push(this.spawn());
  }

  /** Starts `size` workers and waits until each has loaded its modules and keys. */
  static async start(init: PrecheckWorkerInit, size: number): Promise<PrecheckPool> {
    if (!Number.isInteger(size) || size < 1) throw new BiokioskError('BadConfig', `a precheck pool needs at least one worker, got ${size}`, { kind: 'input' });
    const pool = new PrecheckPool(init, size);
    try {
      await Promise.all(pool.slots.map((s) => s.ready));
    } catch (e) {
      await pool.close();
      throw e;
    }
    return pool;
  }

  get size(): number {
    return this.slots.length;
  }

  /** The worker threads now serving (for monitoring: threadId, resource use; replaced ones drop out). */
  workers(): readonly Worker[] {
    return this.slots.map((s) => s.worker);
  }

  private spawn(): Slot {
    const worker = new Worker(BOOTSTRAP, { workerData: this.init });
    const slot: Slot = { worker, ready: Promise.resolve(), inflight: new Map() };
    slot.ready = new Promise<void>((resolve, reject) => {
      const onMessage = (m: WorkerReply) => {
        if ('ready' in m) return resolve();
        if ('initError' in m) return reject(new BiokioskError('PrecheckWorker', `a precheck worker could not start: ${m.initError}`, { kind: 'internal' }));
        const pending = slot.inflight.get(m.id);
        if (!pending) return;
        slot.inflight.delete(m.id);
        if ('error' in m) pending.reject(new BiokioskError('PrecheckWorker', `a precheck worker failed: ${m.error}`, { kind: 'internal' }));
        else pending.resolve(m.results);
      };
      const onGone = (why: string) => {
        reject(new BiokioskError('PrecheckWorker', `a precheck worker could not start: ${why}`, { kind: 'internal' }));
        for (const p of slot.inflight.values()) p.reject(new BiokioskError('PrecheckWorker', `a precheck worker died: ${why}`, { kind: 'internal' }));
        slot.inflight.clear();
        const i = this.slots.indexOf(slot);
        if (i >= 0 && !this.closed) this.slots[i] = this.spawn();
      };
      worker.on('message', onMessage);
      worker.on('error', (e) => onGone(e.message));
      worker.on('exit', (code) => onGone(`exit code ${code}`));
    });
    slot.ready.catch(() => {});
    return slot;
  }

  async run(tasks: PrecheckTask[]): Promise<PrecheckResult[]> {
    if (this.closed) throw new BiokioskError('PrecheckWorker', 'the precheck pool is closed', { kind: 'internal' });
    if (tasks.length === 0) return [];
    const n = Math.min(this.slots.length, tasks.length);
    const per = Math.ceil(tasks.length / n);
    const parts: Promise<PrecheckResult[]>[] = [];
    for (let i = 0; i < n; i++) parts.push(this.send(this.slots[i]!, tasks.slice(i * per, (i + 1) * per)));
    return (await Promise.all(parts)).flat();
  }

  private async send(slot: Slot, tasks: PrecheckTask[]): Promise<PrecheckResult[]> {
    await slot.ready;
    // Each payload in a buffer of its own: a Buffer from the MQTT parser may be a view into a larger one, which
    // structured clone would copy whole; an own buffer is moved to the worker instead.
    const own = tasks.map((t) => ({ ...t, payload: new Uint8Array(t.payload), correlationData: t.correlationData && new Uint8Array(t.correlationData) }));
    const id = this.nextId++;
    return new Promise<PrecheckResult[]>((resolve, reject) => {
      slot.inflight.set(id, { resolve, reject });
      slot.worker.postMessage({ id, tasks: own } satisfies WorkerRequest, own.map((t) => t.payload.buffer as ArrayBuffer));
    });
  }

  async close(): Promise<void> {
    this.closed = true;
    await Promise.all(this.slots.map((s) => s.worker.terminate()));
  }
}
