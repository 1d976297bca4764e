/**
 * A dataset worker thread (started by dataset.ts through worker.mjs): renders the fingers it is sent and answers
 * with raw images, transferred without copies. Encoding and writing stay on the main thread (sharp runs on
 * libuv's pool there), so this thread is pure computation.
 */
import { parentPort } from 'node:worker_threads';
import { runFingerJob, type FingerJob } from './finger-job.ts';

const port = parentPort;
if (!port) throw new Error('worker.ts runs as a worker thread');

port.on('message', (job: FingerJob) => {
  try {
    const r = runFingerJob(job);
    port.postMessage({ ok: true, result: r }, r.images.map((i) => i.buffer as ArrayBuffer));
  } catch (e) {
    port.postMessage({ ok: false, index: job.index, error: e instanceof Error ? `${e.name}: ${e.message}` : String(e) });
  }
});
port.postMessage({ ready: true });
