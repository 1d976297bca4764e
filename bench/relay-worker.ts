/**
 * Issue 3 benchmarks, run by bench/run.ts in their own process (prints one JSON line):
 * - latency: kiosk to verdict through a local mosquitto, extraction excluded (attest = encrypt + sign + enqueue,
 *   relay, verify, decrypt, match, log, verdict back and checked), one attestation at a time;
 * - throughput: one verifier's decision pipeline (verify, decrypt, match, log in one fsync'd transaction per batch)
 *   over pre-made attestations from 50 devices, in batches of 256, and the same through mosquitto end to end;
 * - outbox: enqueue latency with synchronous=FULL.
 */
import { mkdtemp } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mqtt from 'mqtt';
import { Attester } from '../device/attester.ts';
import { Outbox } from '../device/outbox.ts';
import { openKioskState } from '../device/setup.ts';
import { SoftwareKeyStore } from '../device/keystore/software.ts';
import { VerifierNode } from '../verifier/node.ts';
import type { PreparedBatch } from '../verifier/verifier.ts';
import { faceTemplate, MODEL, startKiosk, startVerifier, waitFor } from '../test/helpers/e2e.ts';
import { signedMessage } from '../test/helpers/attest.ts';
import { Mosquitto } from '../test/helpers/mosquitto.ts';

const pct = (a: number[], p: number) => [...a].sort((x, y) => x - y)[Math.min(a.length - 1, Math.floor(a.length * p))]!;
const dir = (p: string) => mkdtemp(join(tmpdir(), p));
const result: Record<string, unknown> = {};
const broker = await Mosquitto.start();
try {
  // --- latency -------------------------------------------------------------------------------------------
  {
    const { v, node } = await startVerifier(broker.url, await dir('bk-bench-v-'));
    await v.store.enroll({ subject: 'alice', modality: 'face', template: faceTemplate(1), templateFormat: 'biokiosk-face/1', modelSha256: MODEL.sha256 });
    const k = await startKiosk(broker.url, v, 'bench-kiosk');
    await waitFor(() => k.relay.connected, 5000, 'kiosk connected');
    const times: number[] = [];
    const N = Number(process.env['BENCH_LATENCY_N'] ?? 500);
    for (let i = 0; i < N + 20; i++) {
      const t0 = performance.now();
      const before = k.verdicts.length;
      await k.attester.attest({ subject: 'alice', modality: 'face', template: faceTemplate(1, 0.03), templateFormat: 'biokiosk-face/1', quality: 80, model: MODEL });
      k.relay.nudge();
      await new Promise<void>((resolve) => {
        const check = () => (k.verdicts.length > before ? resolve() : setImmediate(check));
        check();
      });
      if (i >= 20) times.push(performance.now() - t0);
    }
    result['latency'] = { n: N, p50: pct(times, 0.5), p99: pct(times, 0.99), max: Math.max(...times) };
    await k.stop();
    await node.stop();
    await v.close();
  }

  // --- throughput ----------------------------------------------------------------------------------------
  // The same pre-made attestations (50 devices, fresh ones per case) decided three ways: the pipeline on the main
  // thread alone, batch after batch; the pipeline with precheck workers (one per core but one), the next batch checked
  // while this one is decided, as VerifierNode does; and through mosquitto end to end with the workers.
  {
    const DEVICES = 50;
    const PER = Number(process.env['BENCH_THROUGHPUT_PER_DEVICE'] ?? 80);
    const WORKERS = Math.max(1, availableParallelism() - 1); // as `biokiosk verifier run` by default
    const { v, node } = await startVerifier(broker.url, await dir('bk-bench-v-'));
    await node.stop();
    const pooled = await startVerifier(broker.url, await dir('bk-bench-vp-'), { precheckWorkers: WORKERS });
    await pooled.node.stop();
    const plain = faceTemplate(1, 0.03);
    const make = async (inst: typeof v, round: number, per = PER) => {
      await inst.store.enroll({ subject: 'alice', modality: 'face', template: faceTemplate(1), templateFormat: 'biokiosk-face/1', modelSha256: MODEL.sha256 });
      const msgs: Array<{ topic: string; payload: Buffer }> = [];
      for (let d = 0; d < DEVICES; d++) {
        const ks = SoftwareKeyStore.ephemeral();
        const ueid = `bench-${round}-${d}`;
        await inst.store.registerDevice({ ueid, kid: ks.kid, publicJwk: ks.publicJwk as never, site: 'bench' });
        for (let s = 1; s <= per; s++) {
          // A fresh JWE per attestation, as kiosks send: each has its own ephemeral key.
          msgs.push((await signedMessage(inst.keys.fleet.publicJwk, ks, { ueid, seq: s, template: plain, site: 'bench' })).msg);
        }
      }
      // Interleave devices, as many kiosks would.
      return msgs.sort((a, b) => (a.payload.length % 7) - (b.payload.length % 7));
    };
    const batches = (msgs: Array<{ topic: string; payload: Buffer }>) => Array.from({ length: Math.ceil(msgs.length / 256) }, (_, i) => msgs.slice(i * 256, (i + 1) * 256));
    const decideAll = async (inst: typeof v, msgs: Array<{ topic: string; payload: Buffer }>, pipelined: boolean) => {
      const bs = batches(msgs);
      let next: Promise<PreparedBatch> | undefined;
      for (let i = 0; i < bs.length; i++) {
        if (!pipelined) {
          await inst.verifier.handleBatch(bs[i]!);
          continue;
        }
        const cur = next ?? inst.verifier.prepare(bs[i]!);
        next = i + 1 < bs.length ? inst.verifier.prepare(bs[i + 1]!) : undefined;
        await inst.verifier.decide(await cur);
      }
    };
    // Warm-up first (the JIT, on the main thread and in every worker), as a verifier that has been running is:
    // 1,000 attestations each, not timed.
    await decideAll(v, await make(v, 100, 1000 / DEVICES), false);
    await decideAll(pooled.v, await make(pooled.v, 101, 1000 / DEVICES), true);
    // Main thread only.
    const direct = await make(v, 0);
    const t0 = performance.now();
    await decideAll(v, direct, false);
    const inlineRate = direct.length / ((performance.now() - t0) / 1000);
    // With precheck workers, pipelined: three rounds of fresh attestations (this machine's speed drifts; the
    // report gives every round and their median).
    const pooledRates: number[] = [];
    for (let round = 1; round <= 3; round++) {
      const direct2 = await make(pooled.v, round);
      const t2 = performance.now();
      await decideAll(pooled.v, direct2, true);
      pooledRates.push(direct2.length / ((performance.now() - t2) / 1000));
    }
    const pooledRate = [...pooledRates].sort((a, b) => a - b)[1]!;
    // Through mosquitto: publish everything, count verdicts.
    const viaMqtt = await make(pooled.v, 4);
    const node2 = new VerifierNode(pooled.v.verifier, pooled.v.store, { brokerUrl: broker.url, clientId: 'bench-verifier', protocolVersion: 5 });
    await node2.start();
    const pub = await mqtt.connectAsync(broker.url, { protocolVersion: 5 });
    const sink = await mqtt.connectAsync(broker.url, { protocolVersion: 5 });
    let verdicts = 0;
    await sink.subscribeAsync('biokiosk/v1/+/verdicts', { qos: 1 });
    sink.on('message', () => verdicts++);
    const t1 = performance.now();
    await Promise.all(viaMqtt.map((m) => pub.publishAsync(m.topic, m.payload, { qos: 1 })));
    await waitFor(() => verdicts >= viaMqtt.length, 120_000, 'all verdicts');
    const mqttRate = viaMqtt.length / ((performance.now() - t1) / 1000);
    result['throughput'] = { attestations: direct.length, workers: WORKERS, inlinePerSecond: inlineRate, pipelinePerSecond: pooledRate, pipelineRounds: pooledRates, viaMosquittoPerSecond: mqttRate, logEntries: await pooled.v.store.audit.size() };
    await pub.endAsync();
    await sink.endAsync();
    await node2.stop();
    await v.close();
    await pooled.v.close();
  }

  // --- outbox --------------------------------------------------------------------------------------------
  {
    const box = new Outbox(join(await dir('bk-bench-o-'), 'outbox.db'));
    const payload = Buffer.alloc(2300, 7);
    const times: number[] = [];
    for (let i = 0; i < 2000; i++) {
      const t0 = performance.now();
      box.enqueue(`att-${i}`, i + 1, payload);
      times.push(performance.now() - t0);
    }
    result['outbox'] = { n: 2000, p50: pct(times, 0.5), p99: pct(times, 0.99), max: Math.max(...times) };
    box.close();
  }
} finally {
  await broker.stop();
}
void openKioskState;
void Attester;
process.stdout.write(JSON.stringify(result) + '\n');
