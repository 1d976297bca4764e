/**
 * A precheck worker thread (started by precheck-pool.ts through precheck-worker.mjs): runs precheckAttestation on
 * the chunks the pool sends, and answers each with its results, or with the error that stopped it.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { builtinMatchers } from './matchers.ts';
import { precheckAttestation, type PrecheckDeps } from './precheck.ts';
import type { PrecheckWorkerInit, WorkerReply, WorkerRequest } from './precheck-pool.ts';

const port = parentPort;
if (!port) throw new Error('precheck-worker.ts runs as a worker thread');

function reply(m: WorkerReply, transfer: ArrayBuffer[] = []): void {
  port!.postMessage(m, transfer);
}

let deps: PrecheckDeps | undefined;
try {
  const init = workerData as PrecheckWorkerInit;
  const builtin = builtinMatchers();
  const unknown = init.formats.filter((f) => !builtin.has(f));
  if (unknown.length > 0) throw new Error(`no built-in matcher for template format ${unknown.join(', ')}`);
  deps = { config: init.config, fleetKey: init.fleetKey, matchers: builtin };
  reply({ ready: true });
} catch (e) {
  reply({ initError: e instanceof Error ? e.message : String(e) });
}

port.on('message', async (m: WorkerRequest) => {
  if (!deps) return;
  try {
    const results = [];
    for (const t of m.tasks) results.push(await precheckAttestation(t, deps));
    const transfer = results.flatMap((r) => (r.probe && r.probe.byteOffset === 0 && r.probe.byteLength === r.probe.buffer.byteLength ? [r.probe.buffer as ArrayBuffer] : []));
    reply({ id: m.id, results }, transfer);
  } catch (e) {
    reply({ id: m.id, error: e instanceof Error ? `${e.name}: ${e.message}` : String(e) });
  }
});
