/**
 * `npm run bench`: runs the benchmarks and prints a Markdown report; `npm run bench -- --record` also appends it
 * to BENCHMARKS.md with the date, the machine and the command.
 *
 * `-- --only=startup`: start-up of the CLI, compiled against tsx (bench/startup-worker.ts).
 * `-- --only=fingerprint-real --data DIR` and `-- --only=fingerprint-dpi --data DIR`: fingerprints on real captures
 * (a folder of sets), at their own resolution with NBIS beside, and resampled to other resolutions.
 *
 * Face extraction: a 640x480 frame with one face, median of >= 50 runs after warm-up, model load, peak RSS, and,
 * side by side in the same run, face-api on TF.js WASM with the same nets on the same frame (ratio of medians).
 */
import { execFile } from 'node:child_process';
import { appendFile, mkdtemp, readFile } from 'node:fs/promises';
import os from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import sharp from 'sharp';
import { FACE_API_DIR } from '../test/helpers/fixtures.ts';

const run = promisify(execFile);
const ROOT = join(import.meta.dirname, '..');
const runs = Number(process.env['BENCH_RUNS'] ?? 60);

function stats(times: number[]): { median: number; p90: number; min: number } {
  const s = [...times].sort((a, b) => a - b);
  return { median: s[Math.floor(s.length / 2)]!, p90: s[Math.floor(s.length * 0.9)]!, min: s[0]! };
}

async function worker(side: string, frame: string): Promise<Record<string, any>> {
  const { stdout } = await run(process.execPath, ['--import', 'tsx', join(ROOT, 'bench', 'face-worker.ts'), side, frame, String(runs)], { cwd: ROOT, maxBuffer: 1 << 24 });
  return JSON.parse(stdout.trim().split('\n').pop()!);
}

/** The benchmark frame: 640x480 around the one face of face-api's sample2.jpg, saved as a JPEG. */
async function makeFrame(dir: string): Promise<string> {
  const path = join(dir, 'frame-640x480.jpg');
  const upright = sharp(join(FACE_API_DIR, 'demo', 'sample2.jpg')).rotate();
  const buf = await upright.toBuffer();
  await sharp(buf).extract({ left: 1020, top: 0, width: 900, height: 675 }).resize(640, 480).jpeg({ quality: 90 }).toFile(path);
  return path;
}

const only = process.argv.find((a) => a.startsWith('--only='))?.slice(7);
const cpu = os.cpus()[0]?.model ?? 'unknown cpu';
const date = new Date().toISOString().slice(0, 10);
const machine = `${cpu}, ${os.cpus().length} cores, ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB, ${os.platform()} ${os.release()}, Node ${process.version}`;
const f = (v: number) => v.toFixed(1);
let report = '';

if (!only || only === 'face') {
  const dir = await mkdtemp(join(os.tmpdir(), 'bk-bench-'));
  const frame = await makeFrame(dir);
  const ours = await worker('ours', frame);
  const peer = await worker('face-api', frame);
  const o = stats(ours['times']);
  const p = stats(peer['times']);
  report += `
## ${date}: face extraction (issue 2)

- Machine: ${machine}
- Command: \`npm run bench\` (BENCH_RUNS=${runs}); frame: 640x480 JPEG, one face (cut from face-api's demo/sample2.jpg)

| measure | ours (onnxruntime-node) | face-api on tfjs-wasm | goal |
| --- | --- | --- | --- |
| extraction, median of ${runs} after 5 warm-up (decode + detect + landmarks + align + embed) | ${f(o.median)} ms | ${f(p.median)} ms | <= 35 ms |
| extraction p90 / min | ${f(o.p90)} / ${f(o.min)} ms | ${f(p.p90)} / ${f(p.min)} ms | |
| speed-up, ratio of medians | **${(p.median / o.median).toFixed(2)}x** | 1x | >= 3x |
| model load | ${f(ours['load'])} ms | ${f(peer['load'])} ms (backend init included) | <= 500 ms |
| peak RSS of the process | ${f(ours['peakRssMb'])} MB | ${f(peer['peakRssMb'])} MB | <= 300 MB |

Our stage medians: ${Object.entries(ours['stageMedians'] as Record<string, number>).map(([k, v]) => `${k} ${v.toFixed(2)} ms`).join(', ')}.
face-api backend: ${peer['backend']} (SIMD ${peer['wasmFeatures']?.simd}, threads ${peer['wasmFeatures']?.threads}).
`;
}

if (!only || only === 'relay') {
  const { stdout } = await run(process.execPath, ['--import', 'tsx', join(ROOT, 'bench', 'relay-worker.ts')], { cwd: ROOT, maxBuffer: 1 << 24, env: { ...process.env, PATH: `${process.env['PATH']}:/usr/sbin` } });
  const r = JSON.parse(stdout.trim().split('\n').pop()!) as Record<string, Record<string, number>>;
  const rounds = (r['throughput'] as unknown as { pipelineRounds: number[] }).pipelineRounds.map((x) => x.toFixed(0)).join(', ');
  const l = r['latency']!;
  const t = r['throughput']!;
  const ob = r['outbox']!;
  report += `
## ${date}: attestations, relay and verifier (issue 3)

- Machine: ${machine}
- Command: \`npm run bench -- --only=relay\`; broker: local mosquitto (Debian), MQTT 5, \`set_tcp_nodelay true\`; verifier and kiosk in one process, SQLite WAL + synchronous=FULL

| measure | result | goal |
| --- | --- | --- |
| kiosk to verdict, extraction excluded (encrypt, sign, enqueue, relay, verify, decrypt, match, log, verdict checked), ${l['n']} sequential | p50 ${f(l['p50']!)} ms, p99 ${f(l['p99']!)} ms, max ${f(l['max']!)} ms | p50 <= 25 ms, p99 <= 80 ms |
| one verifier process, decision pipeline (verify, decrypt, match, log, sign verdict; one fsync'd transaction per batch of 256), ${t['attestations']} attestations from 50 devices, after 1,000 of warm-up; checks on ${t['workers']} worker threads, next batch checked while this one is decided (as \`biokiosk verifier run\` does); median of 3 rounds (${rounds} /s) | **${t['pipelinePerSecond']!.toFixed(0)} /s** | >= 2,000 /s |
| the same, everything on the main thread (\`--workers 0\`) | ${t['inlinePerSecond']!.toFixed(0)} /s | |
| the same with workers, through mosquitto (publisher and verdict sink in the verifier's process; all on 2 cores with the broker) | ${t['viaMosquittoPerSecond']!.toFixed(0)} /s | |
| outbox enqueue (fsync'd), ${ob['n']} | p50 ${ob['p50']!.toFixed(2)} ms, p99 ${ob['p99']!.toFixed(2)} ms | p99 <= 3 ms |
`;
}

if (!only || only === 'tpm') {
  const env = { ...process.env, PATH: `${process.env['PATH']}:/usr/sbin` };
  const { stdout } = await run(process.execPath, ['--import', 'tsx', join(ROOT, 'bench', 'tpm-sign.ts')], { cwd: ROOT, maxBuffer: 1 << 24, env });
  const r = JSON.parse(stdout.trim().split('\n').pop()!) as { ours: Record<string, number>; tpm2_sign_per_invocation: Record<string, number>; ratio_p50: number; ratio_p99: number };
  // A full attestation through the kiosk's Attester, software store vs TPM store, in one process, alternating.
  const att = JSON.parse((await run(process.execPath, ['--import', 'tsx', join(ROOT, 'bench', 'attest-worker.ts'), '300'], { cwd: ROOT, maxBuffer: 1 << 24, env })).stdout.trim().split('\n').pop()!) as Record<string, Record<string, number>> & { addedP50: number; addedP99: number };
  // The whole demo, software key file vs TPM key (swtpm), alternating, several runs each; attempt 1 of a run is
  // the process's first attestation (cold: JIT, curve tables), attempt 2 is warm.
  const { Swtpm } = await import('../test/helpers/swtpm.ts');
  const tpm = await Swtpm.start();
  const demoRuns = Number(process.env['BENCH_DEMO_RUNS'] ?? 5);
  type Kind = 'software' | 'tpm';
  const sign: Record<Kind, [number[], number[]]> = { software: [[], []], tpm: [[], []] };
  const total: Record<Kind, [number[], number[]]> = { software: [[], []], tpm: [[], []] };
  try {
    for (let i = 0; i < demoRuns; i++) {
      for (const kind of ['software', 'tpm'] as const) {
        const args = [join(ROOT, 'bin', 'biokiosk.js'), 'demo', '--json', ...(kind === 'tpm' ? ['--tpm', tpm.url] : [])];
        const out = JSON.parse((await run(process.execPath, args, { cwd: ROOT, maxBuffer: 1 << 24, env })).stdout) as { attempts: Array<{ latencyMs: { sign: number; total: number } }> };
        out.attempts.slice(0, 2).forEach((a, k) => {
          sign[kind][k]!.push(a.latencyMs.sign);
          total[kind][k]!.push(a.latencyMs.total);
        });
      }
    }
  } finally {
    await tpm.stop();
  }
  const med = (a: number[]) => stats(a).median;
  const row = (name: string, m: Record<Kind, [number[], number[]]>, k: 0 | 1) => `| ${name} | ${f(med(m.software[k]))} ms | ${f(med(m.tpm[k]))} ms | ${f(med(m.tpm[k]) - med(m.software[k]))} ms |`;
  report += `
## ${date}: TPM signing (issue 4)

- Machine: ${machine}
- Command: \`npm run bench -- --only=tpm\`; TPM: swtpm (Debian) over TCP loopback, fresh state; key: ECC P-256 at persistent handle 0x81010002

| measure | ours (drivers/tpm, one open connection) | tpm2_sign (tpm2-tools, one process per signature) | ratio |
| --- | --- | --- | --- |
| ECDSA P-256 sign of a SHA-256 digest, ${r.ours['n']} / ${r.tpm2_sign_per_invocation['n']} signatures | p50 ${r.ours['p50_ms']!.toFixed(2)} ms, p99 ${r.ours['p99_ms']!.toFixed(2)} ms | p50 ${r.tpm2_sign_per_invocation['p50_ms']!.toFixed(2)} ms, p99 ${r.tpm2_sign_per_invocation['p99_ms']!.toFixed(2)} ms | **${r.ratio_p50}x** at p50, ${r.ratio_p99}x at p99 |

A full attestation (seq, encrypt, sign, fsync'd enqueue) by the kiosk's Attester, ${att['software']!['n']} each, alternating (\`bench/attest-worker.ts\`):

| | software key file (seq in SQLite) | TPM (seq from its NV counter) | added by the TPM |
| --- | --- | --- | --- |
| p50 | ${att['software']!['p50']!.toFixed(2)} ms | ${att['tpm']!['p50']!.toFixed(2)} ms | **${att.addedP50.toFixed(2)} ms** |
| p99 | ${att['software']!['p99']!.toFixed(2)} ms | ${att['tpm']!['p99']!.toFixed(2)} ms | ${att.addedP99.toFixed(2)} ms |

\`biokiosk demo\` end to end (embedded broker), ${demoRuns} runs each, alternating; medians:

| stage | software key file | TPM (swtpm) | added by the TPM |
| --- | --- | --- | --- |
${row('sign stage, first attempt of the process (cold)', sign, 0)}
${row('sign stage, second attempt (warm)', sign, 1)}
${row('total, capture to verdict, second attempt', total, 1)}
`;
}

if (!only || only === 'fingerprint') {
  const env = { ...process.env, PATH: `${process.env['PATH']}:/usr/sbin` };
  const json = async (script: string, args: string[] = []) =>
    JSON.parse((await run(process.execPath, ['--import', 'tsx', join(ROOT, 'bench', script), ...args], { cwd: ROOT, maxBuffer: 1 << 24, env })).stdout.trim().split('\n').pop()!) as Record<string, any>;
  const x = await json('fingerprint-extract.ts');
  const m = await json('fingerprint-match.ts');
  const sp = await json('fingerprint-serial.ts');
  const sy = await json('fingerprint-synth.ts');
  const baud = (b: string) => sp['baud'][b] as Record<string, number>;
  report += `
## ${date}: fingerprints (issues 5 and 12)

- Machine: ${machine}
- Command: \`npm run bench -- --only=fingerprint\` (bench/fingerprint-extract.ts, fingerprint-match.ts, fingerprint-serial.ts, fingerprint-synth.ts)

| measure | result | goal |
| --- | --- | --- |
${(x['sizes'] as Array<Record<string, any>>).map((z) => `| extraction, ${z['width']}x${z['height']} synthetic impressions at 500 dpi, ${z['runs']} runs | median ${z['medianMs']} ms, p90 ${z['p90Ms']} ms; ${z['minutiaeMedian']} minutiae (median) | median <= ${z['goalMs']} ms |`).join('\n')}
| matching, prepared templates (~${Math.round(m['meanMinutiae'])} minutiae) with orientation descriptors, one core | ${m['comparisonsPerSecond'].median} comparisons/s (median of rounds; best ${m['comparisonsPerSecond'].best}); without descriptors ${m['withoutDescriptorsPerSecond'].median} | >= 20,000 /s |
| template size with descriptors, 40 minutiae / ${m['templateBytes'].cap} (the cap with a ${m['templateBytes'].modelNameBytes}-byte model name) | ${m['templateBytes'].minutiae40} / ${m['templateBytes'].atCap} bytes (without descriptors: ${m['templateBytesWithoutDescriptors'].minutiae40} / ${m['templateBytesWithoutDescriptors'].atCap} at ${m['templateBytesWithoutDescriptors'].cap}) | <= 1 KB |
| serial: finger placed to image in memory at 57600 baud (${baud('57600')['runs']} runs) | ${baud('57600')['median_ms']!.toFixed(0)} ms; the wire's limit ${baud('57600')['wire_limit_ms']!.toFixed(0)} ms (${baud('57600')['wire_bytes']} bytes): ${baud('57600')['ratio_to_limit']!.toFixed(3)}x | |
| serial: the same at 115200 baud | ${baud('115200')['median_ms']!.toFixed(0)} ms; the wire's limit ${baud('115200')['wire_limit_ms']!.toFixed(0)} ms: ${baud('115200')['ratio_to_limit']!.toFixed(3)}x | |
| synthetic dataset (\`biokiosk synth fingerprint\`), ${sy['fingers']} fingers x ${sy['impressions']} impressions on ${sy['workers']} workers | ${(sy['wallMs'] / 1000).toFixed(1)} s; ${sy['masterMs']} ms per master, ${sy['impressionMs']} ms per impression (CPU) | |

${(x['sizes'] as Array<Record<string, any>>).map((z) => `Extraction stage medians, ${z['width']}x${z['height']}: ${Object.entries(z['stagesMedianMs'] as Record<string, number>).map(([k, v]) => `${k} ${v} ms`).join(', ')}.`).join('\n')}
`;
}

if (!only || only === 'hostile') {
  const { stdout } = await run(process.execPath, ['--import', 'tsx', join(ROOT, 'bench', 'hostile-worker.ts')], { cwd: ROOT, maxBuffer: 1 << 24, env: { ...process.env, PATH: `${process.env['PATH']}:/usr/sbin` } });
  const h = JSON.parse(stdout.trim().split('\n').pop()!) as { flood: Record<string, any>; tls: Record<string, any> };
  const fl = h.flood;
  const t = h.tls;
  const rounds = (a: number[]) => a.map((x) => x.toFixed(0)).join(', ');
  report += `
## ${date}: a hostile network (issue 10)

- Machine: ${machine}
- Command: \`npm run bench -- --only=hostile\` (bench/hostile-worker.ts); broker: the fleet configuration (deploy/mosquitto/fleet.conf: mutual TLS, dynamic-security access rules) unless said otherwise; one verifier node with ${t['workers']} precheck worker(s), as \`biokiosk verifier run\` by default

| measure | result | goal |
| --- | --- | --- |
| honest kiosks to verdict, one attempt at a time (4 kiosks taking turns), no flood (${fl['quiet'].n} attempts) | p50 ${f(fl['quiet'].p50)} ms, p99 ${f(fl['quiet'].p99)} ms, max ${f(fl['quiet'].max)} ms | |
| the same while a compromised kiosk's process publishes ${fl['junkPerRound']} junk messages on its own topic as fast as it can (${fl['rounds']} rounds, ${fl['unlimited'].publishRatePerSecond.toFixed(0)} messages/s where nothing refuses them); the fleet broker with its per-client rate limit (50/s, 300 at once, disconnected after 100 refused in a row), the verifier's intake alone (no \`--broker-admin\`) (${fl['flooded'].n} attempts) | p50 ${f(fl['flooded'].p50)} ms, **p99 ${f(fl['flooded'].p99)} ms**, max ${f(fl['flooded'].max)} ms; the verifier read ${fl['flooded'].junkReceived} of the ${fl['junkPerRound']} junk messages (median) | p99 <= 250 ms |
| the same, the node also quarantining flooders at the broker (\`verifier run --broker-admin\`), right after the above (${fl['quarantined'].n} attempts) | p50 ${f(fl['quarantined'].p50)} ms, **p99 ${f(fl['quarantined'].p99)} ms**, max ${f(fl['quarantined'].max)} ms; the verifier read ${fl['quarantined'].junkReceived} (the rogue's bucket had little time to refill), ${fl['quarantined'].quarantines} quarantines in ${fl['rounds']} rounds | p99 <= 250 ms |
| the same flood and quarantine on the fleet broker without the rate-limit plugin, rounds alternating with the above (${fl['unlimited'].n} attempts) | p50 ${f(fl['unlimited'].p50)} ms, p99 ${f(fl['unlimited'].p99)} ms, max ${f(fl['unlimited'].max)} ms; the broker took ${fl['unlimited'].acceptedByBroker} of the ${fl['junkPerRound']} and the verifier read ${fl['unlimited'].junkReceived} of them (medians); ${fl['unlimited'].quarantines} quarantines, in force a median ${f(fl['unlimited'].quarantinedAfterMs)} ms after the publisher was told to start | |
| what became of the junk | the rate limit disconnected the flooder ${fl['brokerDisconnects']} times; at the verifier (intake alone): refused without cryptography ${fl['dropped'].not_the_device}, dropped once over its failure budget ${fl['dropped'].throttled}, per-device queue full ${fl['dropped'].device_queue_full}; audit log ${fl['logEntries']} entries for ${fl['honestAttempts']} honest attempts | no junk in the log |
| verifier throughput end to end, ${t['devices']} kiosks (their connections in another process), ${t['attestationsPerRound']} attestations a round: plain-text mosquitto | ${t['plainPerSecond'].toFixed(0)} /s (rounds ${rounds(t['plainRounds'])}) | |
| the same on the fleet broker (TLS, access rules, rate limit), rounds alternating with the above | ${t['tlsPerSecond'].toFixed(0)} /s (rounds ${rounds(t['tlsRounds'])}): **${(t['pairedRatio'] * 100).toFixed(1)}%** of plain text, the median of each round against the plain-text round before it (the medians' ratio: ${(t['ratio'] * 100).toFixed(1)}%; throughput climbs over the rounds for both) | within 10% |
`;
}

if (!only || only === 'session') {
  const { stdout } = await run(process.execPath, ['--import', 'tsx', join(ROOT, 'bench', 'session-worker.ts')], { cwd: ROOT, maxBuffer: 1 << 24, env: { ...process.env, PATH: `${process.env['PATH']}:/usr/sbin` } });
  const r = JSON.parse(stdout.trim().split('\n').pop()!) as Record<string, any>;
  const row = (m: string) => {
    const st = r[m]['states'] as Record<string, { p50: number; p95: number }>;
    const cell = (k: string) => `${f(st[k]!.p50)} / ${f(st[k]!.p95)}`;
    return `| ${m} | ${cell('challenge')} | ${cell('capture')} | ${cell('extract')} | ${cell('attest')} | ${cell('awaiting_verdict')} | **${cell('overhead')}** | ${cell('total')} | ${Object.entries(r[m]['outcomes']).map(([k, n]) => `${n} ${k}`).join(', ')} |`;
  };
  report += `
## ${date}: verification sessions (issue 11)

- Machine: ${machine}
- Command: \`npm run bench -- --only=session\` (bench/session-worker.ts): ${r['sessions']} sessions per modality after 5 of warm-up, one at a time, through a local mosquitto and a verifier in the same process; face from the virtual camera (ffmpeg MJPEG pipe, 640x640 JPEG frames), fingerprint from the virtual ZFM module on a pty (no baud pacing: a real module's upload takes ~3.5 s at 115200 baud, all of it in "capture"); the site asks for a nonce when online

Milliseconds per state, p50 / p95 (identify and result take ~0: the id is typed at once, the result is not held):

| modality | challenge | capture | extract | attest | awaiting verdict (relay, verify, receipt check) | everything but capture and extraction | start to cleared | outcomes |
| --- | --- | --- | --- | --- | --- | --- | --- | --- |
${row('face')}
${row('fingerprint')}

Goal: everything except capture and extraction <= 15 ms at p50, receipt checks included.
`;
}

if (!only || only === 'iris') {
  const { stdout } = await run(process.execPath, ['--import', 'tsx', join(ROOT, 'bench', 'iris.ts')], { cwd: ROOT, maxBuffer: 1 << 24 });
  const r = JSON.parse(stdout.trim().split('\n').pop()!) as Record<string, any>;
  report += `
## ${date}: iris (issue 16)

- Machine: ${machine}
- Command: \`npm run bench -- --only=iris\` (bench/iris.ts)

| measure | result | goal |
| --- | --- | --- |
| extraction, 640x480 synthetic captures, ${r['extract'].runs} runs after warm-up (decode to template) | median ${r['extract'].medianMs} ms, p90 ${r['extract'].p90Ms} ms (${r['extract'].failures} failures) | median <= 40 ms |
| matching, prepared codes, one core, rotation search +-${r['match'].maxShift} columns | ${r['match'].comparisonsPerSecond.median} comparisons/s (median of 7 rounds; best ${r['match'].comparisonsPerSecond.best}) | >= 500,000 /s |
| template size | ${r['templateBytes'].max} bytes | <= 1 KB |
| HID: capture start to a 640x480 image in memory (virtual camera, ${r['hid'].reportRate} reports/s) | median ${r['hid'].medianMs} ms; the report rate's limit ${r['hid'].limitMs} ms (${r['hid'].reports} reports): ${(r['hid'].medianMs / r['hid'].limitMs).toFixed(2)}x | |

Extraction stage medians: ${Object.entries(r['extract'].stagesMedianMs as Record<string, number>).map(([k, v]) => `${k} ${v} ms`).join(', ')}.
`;
}

if (!only || only === 'fleet') {
  const env = { ...process.env, PATH: `${process.env['PATH']}:/usr/sbin` };
  const fleetOut = await run(process.execPath, ['--import', 'tsx', join(ROOT, 'bench', 'fleet-worker.ts')], { cwd: ROOT, maxBuffer: 1 << 26, env });
  const fl = JSON.parse(fleetOut.stdout.trim().split('\n').pop()!) as { devices: number; attestationsPerRound: number; rounds: number; configs: Record<string, { rounds: number[]; perSecond: number; verifierCpuMsPerDecision: number; pgCpuMsPerDecision: number; cosign?: { p50: number; p99: number; covered: number } }> };
  const appendOut = await run(process.execPath, ['--import', 'tsx', join(ROOT, 'bench', 'audit-append.ts'), '50000', '256'], { cwd: ROOT, maxBuffer: 1 << 24, env });
  const ap = (JSON.parse(appendOut.stdout.trim().split('\n').pop()!) as { auditAppend: Array<Record<string, any>> }).auditAppend;
  const c = fl.configs;
  const sq = c['sqlite-1']!;
  const row = (name: string, label: string) => {
    const x = c[name]!;
    return `| ${label} | ${x.perSecond.toFixed(0)} /s (rounds ${x.rounds.join(', ')}) | ${(x.perSecond / sq.perSecond * 100).toFixed(0)}% | ${x.verifierCpuMsPerDecision.toFixed(2)} ms | ${name.startsWith('sqlite') ? 'in the verifier' : `${x.pgCpuMsPerDecision.toFixed(2)} ms`} |`;
  };
  const w = c['postgres-1-witnessed']!;
  const pgA = ap.find((a) => a['store'] === 'postgres')!;
  const sqA = ap.find((a) => a['store'] === 'sqlite')!;
  // Capacity on paper: 10,000 kiosks x 200 check-ins a day, the peak hour 10x the day's average hour.
  const perDay = 10_000 * 200;
  const peak = (perDay / 24 / 3600) * 10;
  const cpu = c['postgres-1']!.verifierCpuMsPerDecision;
  const pgCpu = c['postgres-1']!.pgCpuMsPerDecision;
  const peakCores = (peak * cpu) / 1000;
  report += `
## ${date}: verifiers beyond one machine (issue 13)

- Machine: ${machine}
- Command: \`npm run bench -- --only=fleet\` (bench/fleet-worker.ts, then \`bench/audit-append.ts 50000 256\`): every configuration from an empty store with the same ${fl.devices} devices and the same ${fl.attestationsPerRound} pre-made attestations, published at once by ${fl.devices} MQTT connections in a process of their own to a local mosquitto; the nodes are \`biokiosk verifier run --workers 1\` processes on this machine; PostgreSQL 15 (Debian, fsync and synchronous_commit on) on this machine too; the clock stops at the last verdict; CPU from /proc (verifier processes; PostgreSQL's postmaster and backends); ${fl.rounds} rounds, median, configurations in turn within each round

| configuration | decisions/s end to end | of one SQLite node | verifier CPU per decision | PostgreSQL CPU per decision |
| --- | --- | --- | --- | --- |
${row('sqlite-1', 'one node, embedded SQLite')}
${row('postgres-1', '**one node, PostgreSQL**')}
${row('postgres-2', 'two nodes, PostgreSQL')}
${row('postgres-3', 'three nodes, PostgreSQL')}
${row('postgres-1-witnessed', 'one node, PostgreSQL, a witness cosigning every batch before its verdicts go out')}

Goal: one PostgreSQL node >= 70% of the SQLite node. On 2 cores more nodes add no capacity: they share the cores, and every batch takes the one decision lock; the point of 2 and 3 is that they stay correct (the fleet test) and what each decision costs.

| measure | result | goal |
| --- | --- | --- |
| log appends sustained, batches of 256 with a signed checkpoint each and the batch's inclusion proofs: PostgreSQL | **${pgA['appendsPerSecond']} /s** (batch p50 ${pgA['batchP50Ms']} ms, p99 ${pgA['batchP99Ms']} ms) | >= 3,000 /s |
| the same on SQLite (WAL, synchronous=FULL) | ${sqA['appendsPerSecond']} /s (batch p50 ${sqA['batchP50Ms']} ms, p99 ${sqA['batchP99Ms']} ms) | |
| full audit of that log (entries, commitments, subtrees, checkpoints) | PostgreSQL ${pgA['auditRecordsPerSecond']} entries/s, SQLite ${sqA['auditRecordsPerSecond']} entries/s | |
| decision to the first witness cosignature covering its entry (one node, one witness on loopback) | ${w.cosign && w.cosign.covered > 0 ? `median ${w.cosign.p50.toFixed(0)} ms, p99 ${w.cosign.p99.toFixed(0)} ms (${(w.cosign.covered * 100).toFixed(0)}% of entries covered)` : 'no entry covered: the witness answered no batch within the 2 s witness timeout'} | |

Capacity on paper for 10,000 kiosks x 200 check-ins a day with a 10x peak hour: ${(perDay / 1e6).toFixed(1)} million decisions a day, ${(perDay / 86400).toFixed(1)}/s on average, **${peak.toFixed(0)}/s in the peak hour**.
- Verifier nodes: ${cpu.toFixed(2)} ms of CPU per decision measured here (signature, decryption, match, the batch, the verdict) is ${peakCores.toFixed(2)} cores at the peak; at 50% utilisation ${Math.max(1, Math.ceil(peakCores / 0.5))} core(s), so two 2-core nodes carry it and a third (the fleet test's three) keeps it when one dies or is upgraded.
- The decision lock: every batch of every node passes through it, so it is the fleet's ceiling; its work (replay checks, log append, one checkpoint) ran at ${pgA['appendsPerSecond']} appends/s here, ${(Number(pgA['appendsPerSecond']) / peak).toFixed(0)}x the peak. Batches grow under load (up to 256), which keeps the lock's cost per decision falling as load rises.
- PostgreSQL: ${pgCpu.toFixed(2)} ms of its CPU per decision is ${((peak * pgCpu) / 1000).toFixed(2)} cores at the peak; storage about 1 KB per decision (record ~0.6 KB, salt, hashes, key, subtree nodes, a checkpoint per batch), ${(perDay * 1e3 / 2 ** 30).toFixed(1)} GiB a day and ${(perDay * 1e3 * 365 / 2 ** 40).toFixed(2)} TiB a year before WAL and backups: partitioning or archiving old entries (kept verifiable by their checkpoints) is the first thing such a fleet needs, not more CPU.
- The broker: 10,000 persistent kiosk connections and at the peak ${peak.toFixed(0)} attestations in plus ${peak.toFixed(0)} verdicts out a second (QoS 1), a small load for one mosquitto (file-descriptor limit >= 10,240); a second broker for availability, not capacity.
`;
}

if (!only || only === 'provision') {
  const out = await run(process.execPath, ['--import', 'tsx', join(ROOT, 'bench', 'provision-worker.ts')], { cwd: ROOT, maxBuffer: 1 << 24 });
  const p = JSON.parse(out.stdout.trim().split('\n').pop()!) as { runs: number; wallMs: number[]; medianWallMs: number; maxWallMs: number; stepMedians: Record<string, number>; medianStepsTotalMs: number };
  report += `
## ${date}: provisioning a kiosk end to end (issue 14)

- Machine: ${machine}
- Command: \`npm run bench -- --only=provision\` (bench/provision-worker.ts): ${p.runs} runs, each a fresh swtpm (EK certificate from swtpm's local CA; swtpm_setup not counted), a new token and state folder; \`biokiosk provision --json\` as its own process against the registry over HTTPS, the fleet broker (mosquitto, TLS, dynamic-security logins added live), the virtual camera (ffmpeg) and the virtual serial fingerprint module, all on this machine

| measure | result | goal |
| --- | --- | --- |
| \`biokiosk provision\`, wall time, median of ${p.runs} | **${(p.medianWallMs / 1000).toFixed(2)} s** (max ${(p.maxWallMs / 1000).toFixed(2)} s; runs ${p.wallMs.map((x) => (x / 1000).toFixed(1)).join(', ')} s) | <= 10 s |
| the steps, summed (the rest is the process starting: Node, tsx, module loading) | ${(p.medianStepsTotalMs / 1000).toFixed(2)} s | |

Median time per step: ${Object.entries(p.stepMedians).map(([k, v]) => `${k} ${v.toFixed(0)} ms`).join(', ')}.
`;
}

// The fault-injection runs at the issue's full size (the suite runs them smaller): ~10 minutes, only when asked for.
if (only === 'fleet-10k') {
  const env = { ...process.env, PATH: `${process.env['PATH']}:/usr/sbin`, FLEET_TOTAL: '10000', RELIABILITY_TOTAL: '10000' };
  const rows: string[] = [];
  for (const [file, what] of [['test/fleet-netns.test.ts', 'fleet on separate hosts: 3 verifier namespaces, PostgreSQL, a node SIGKILLed, PostgreSQL and the broker restarted, a witness'], ['test/reliability.test.ts', 'one SQLite file: broker restarts, a kiosk SIGKILLed, a verifier killed']] as const) {
    const t0 = performance.now();
    const r = await run(process.execPath, [join(ROOT, 'node_modules', 'vitest', 'vitest.mjs'), 'run', file], { cwd: ROOT, maxBuffer: 1 << 26, env }).then(
      (x) => ({ ok: true, out: x.stdout }),
      (e: { stdout?: string }) => ({ ok: false, out: e.stdout ?? '' }),
    );
    const plain = r.out.replace(/\x1b\[[0-9;]*m/g, '');
    const tests = /Tests\s+(.*)/.exec(plain)?.[1]?.trim() ?? 'no summary';
    // The test's own title says how many attestations it ran (from FLEET_TOTAL / RELIABILITY_TOTAL).
    const count = /(\d+) attestations/.exec(plain)?.[1] ?? '?';
    rows.push(`| ${what} (\`${file}\`): ${count} attestations | ${r.ok ? 'passed' : '**failed**'} (${tests}) | ${((performance.now() - t0) / 1000).toFixed(0)} s |`);
  }
  report += `
## ${date}: 10,000 attestations through faults (issue 13)

- Machine: ${machine}
- Command: \`npm run bench -- --only=fleet-10k\` (the two test files with FLEET_TOTAL=10000 and RELIABILITY_TOTAL=10000; \`npm test\` runs them with 4,000 and 2,000): exactly one verdict and log entry per attestation, none rejected, every receipt checked by its kiosk

| run | result | wall time |
| --- | --- | --- |
${rows.join('\n')}
`;
}

if (!only || only === 'startup') {
  await run(process.execPath, [join(ROOT, 'scripts', 'build.mjs')], { cwd: ROOT });
  const { stdout } = await run(process.execPath, ['--import', 'tsx', join(ROOT, 'bench', 'startup-worker.ts')], { cwd: ROOT, maxBuffer: 1 << 24, env: { ...process.env, PATH: `${process.env['PATH']}:/usr/sbin` } });
  const s = JSON.parse(stdout.trim().split('\n').pop()!) as { runs: number; compiled: Record<string, number>; tsx: Record<string, number> };
  const row = (name: string, k: string) => `| ${name} | ${f(s.compiled[k]!)} ms | ${f(s.tsx[k]!)} ms | ${(s.tsx[k]! / s.compiled[k]!).toFixed(2)}x |`;
  report += `
## ${date}: start-up, compiled against tsx (issue 17)

- Machine: ${machine}
- Command: \`npm run bench -- --only=startup\` (bench/startup-worker.ts): fresh processes, compiled (dist/, \`npm run build\`) and the sources through tsx (\`BIOKIOSK_FROM_SOURCE=1\`) alternating, medians of ${s.runs} after one warm-up round; \`run\`: face, software key, local mosquitto, camera \`dir:\` with one photo

| from spawn to | compiled | tsx | tsx / compiled |
| --- | --- | --- | --- |
${row('`biokiosk --help` exits', 'helpMs')}
${row('`biokiosk run`: the first capture prompt', 'toCapturePromptMs')}
${row('`biokiosk run`: the first capture extracted (models loaded)', 'toFirstExtractedMs')}
`;
}

if (!only || only === 'screen') {
  const { stdout } = await run(process.execPath, ['--import', 'tsx', join(ROOT, 'bench', 'screen-worker.ts')], { cwd: ROOT, maxBuffer: 1 << 24, env: { ...process.env, PATH: `${process.env['PATH']}:/usr/sbin` } });
  const r = JSON.parse(stdout.trim().split('\n').pop()!) as Record<string, any>;
  const v = r['verdict'];
  const b = r['boot'];
  const cell = (x: { p50: number; p95: number }) => `${f(x.p50)} / ${f(x.p95)}`;
  const met = (x: number, goal: number) => (x <= goal ? `met (${f(x)} <= ${goal})` : `**not met** (${f(x)} > ${goal})`);
  report += `
## ${date}: the counter screen (issue 15)

- Machine: ${machine}${os.loadavg()[0]! > 1 ? ` (load average ${os.loadavg()[0]!.toFixed(1)} when it ended: other work ran on it)` : ''}
- Command: \`npm run bench -- --only=screen\` (bench/screen-worker.ts): Debian's chromium headless (playwright-core, ${'`'}--headless --no-sandbox --disable-gpu${'`'}), the screen served by the kiosk on 127.0.0.1; a hospital kiosk (consent asked, eligibility answered) with the virtual camera (ffmpeg MJPEG pipe, 640x640 JPEG at 15 fps), a local mosquitto (MQTT 5) and a verifier in the same process with a decision policy and a CSV eligibility table; ${r['sessions']} sessions after 3 of warm-up (${Object.entries(v['outcomes']).map(([k, n]) => `${n} ${k}`).join(', ')}); ${r['boots']} boots each way
- Times from the page's own clock: a click is when chromium dispatched it, "painted" the frame after the DOM showed the screen

| ms, p50 / p95 | |
| --- | --- |
| "Start" clicked to the consent question painted | ${cell(v['toConsent'])} |
| "I agree" clicked to the verdict painted | ${cell(v['toVerdict'])} |
| of which capture (camera frames until a good one; excluded) | ${cell(v['capture'])} |
| of which extraction on the kiosk (face pipeline) | ${cell(v['extract'])} |
| of which attest (seal, sign, outbox) | ${cell(v['attest'])} |
| of which awaiting the verdict (relay, decision under the policy, eligibility, log, receipt check) | ${cell(v['awaitingVerdict'])} |
| **start to verdict on screen, capture excluded** (the two above minus capture) | **${cell(v['startToVerdictExclCapture'])}** |
| kiosk boot to the start screen painted, browser already running | ${cell(b['browserRunning'])} (first contentful paint ${cell(b['browserRunningFcp'])}) |
| kiosk boot to the start screen painted, chromium launched by playwright at the same moment (launch, CDP, new page, navigation) | ${cell(b['browserLaunched'])} |
| kiosk boot, then chromium started with the screen's URL as kiosk mode does, to the page asking for the live state (painted on its arrival, a frame later) | ${cell(b['kioskMode'])} |

Goals: start to verdict on screen, capture excluded, <= 400 ms: p50 ${met(v['startToVerdictExclCapture'].p50, 400)}, p95 ${met(v['startToVerdictExclCapture'].p95, 400)}. First paint after a kiosk boot <= 1 s: browser running ${met(b['browserRunning'].p95, 1000)} at p95; chromium started by playwright with the kiosk ${met(b['browserLaunched'].p95, 1000)} at p95; chromium started as in kiosk mode once the screen is served ${met(b['kioskMode'].p95, 1000)} at p95 (plus a frame).
`;
}

// Accuracy takes ~6 minutes (four synthetic sets), so it runs only when asked for.
if (only === 'fingerprint-accuracy') {
  const out = await run(process.execPath, ['--import', 'tsx', join(ROOT, 'bench', 'fingerprint-accuracy.ts')], { cwd: ROOT, maxBuffer: 1 << 24 });
  const acc = JSON.parse(out.stdout.trim().split('\n').pop()!) as { fingers: number; impressions: number; results: Array<Record<string, any>> };
  const rows = acc.results.map((r) => {
    const d = r['atDefaultThreshold'];
    return `| ${r['seed']} | ${r['eerPercent'].fvc}% | ${r['eerPercent'].all}% | ${r['fnmrPercentAt']['0.001']}% | ${r['fnmrPercentAt']['0.0001']}% (score ${r['thresholdAtFmr1e4']?.toFixed(4)}) | FMR ${d.fmr.toExponential(2)} (${d.falseMatches}), FNMR ${d.fnmrPercent}% (${d.falseNonMatches}) | ${r['failures']} |`;
  });
  report += `
## ${date}: fingerprint accuracy over synthetic sets (issue 5; regression checks since issue 12)

- Machine: ${machine}
- Command: \`npm run bench -- --only=fingerprint-accuracy\` (bench/fingerprint-accuracy.ts: per seed, \`biokiosk synth fingerprint --fingers ${acc.fingers} --impressions ${acc.impressions} --seed N\` and the evaluation of \`biokiosk eval --modality fingerprint\` with \`--impostors fvc\` and \`--impostors all\`)
- Per seed: ${acc.results[0]?.['genuinePairs']} genuine pairs; impostors ${acc.results[0]?.['impostorPairs'].fvc} (FVC) and ${acc.results[0]?.['impostorPairs'].all} (all cross-finger pairs). Regression checks only: the default threshold is calibrated on real captures (\`--only=fingerprint-real\`).

| seed | EER, FVC | EER, all pairs | FNMR at FMR 1e-3 | FNMR at FMR 1e-4 | at the default threshold (${acc.results[0]?.['atDefaultThreshold'].threshold}) | extraction failures |
| --- | --- | --- | --- | --- | --- | --- |
${rows.join('\n')}

Regression goals (issue 5): EER <= 1% (FVC protocol); FNMR <= 3% at FMR 1e-4 (all cross-finger pairs).
`;
}

/** `--data DIR` or `--data=DIR`: the folder of real sets the fingerprint-real and fingerprint-dpi parts read. */
const dataArg = (): string | undefined =>
  process.argv.find((a) => a.startsWith('--data='))?.slice(7) ?? (process.argv.includes('--data') ? process.argv[process.argv.indexOf('--data') + 1] : undefined);

// Real captures: needs a folder of sets (e.g. ../shared/data/fingerprint), so it runs only when asked for.
if (only === 'fingerprint-real') {
  const data = dataArg();
  if (!data) {
    process.stderr.write('--only=fingerprint-real needs --data FOLDER (a folder of sets of {finger}_{impression} images)\n');
    process.exit(2);
  }
  const args = [join(ROOT, 'bench', 'fingerprint-real.ts'), '--data', data, ...(process.argv.includes('--no-peer') ? ['--no-peer'] : [])];
  const out = await run(process.execPath, ['--import', 'tsx', ...args], { cwd: ROOT, maxBuffer: 1 << 26, env: { ...process.env, PATH: `${process.env['PATH']}:/usr/sbin` } });
  const lines = out.stdout.trim().split('\n');
  const r = JSON.parse(lines.pop()!) as { tuned: string[]; calibrated: string[]; extractMsMedianBySize: Record<string, number> };
  report += `
## ${date}: fingerprints on real captures (issue 12)

- Machine: ${machine}
- Command: \`npm run bench -- --only=fingerprint-real --data ${data}\` (bench/fingerprint-real.ts; the peer through bench/nbis-libfprint.py)
- Parameters tuned on: ${r.tuned.join(', ')}; default threshold calibrated on: ${r.calibrated.join(', ')} (pooled); every other set is held out.
- Extraction medians by image size (one pass per image, decoding included, JIT not warmed; the speed benchmark is \`--only=fingerprint\`): ${Object.entries(r.extractMsMedianBySize).map(([k, v]) => `${k} ${v} ms`).join(', ')}

${lines.join('\n')}
`;
}

// Other resolutions, from the same real captures resampled: also needs --data.
if (only === 'fingerprint-dpi') {
  const data = dataArg();
  if (!data) {
    process.stderr.write('--only=fingerprint-dpi needs --data FOLDER (a folder of sets of {finger}_{impression} images at 500 dpi)\n');
    process.exit(2);
  }
  const out = await run(process.execPath, ['--import', 'tsx', join(ROOT, 'bench', 'fingerprint-dpi.ts'), '--data', data], { cwd: ROOT, maxBuffer: 1 << 26 });
  report += `
## ${date}: fingerprints at other resolutions, from real captures (issue 12)

- Machine: ${machine}
- Command: \`npm run bench -- --only=fingerprint-dpi --data ${data}\` (bench/fingerprint-dpi.ts: each 500 dpi image resampled with sharp's Lanczos 3, extracted with that \`--dpi\`)

${out.stdout.trim()}
`;
}

process.stdout.write(report);
if (process.argv.includes('--record')) {
  const path = join(ROOT, 'BENCHMARKS.md');
  const existing = await readFile(path, 'utf8').catch(() => null);
  const header = '# Benchmarks\n\nEach section: date, machine, command, figures. Rerun with `npm run bench` (`-- --only=face` or `-- --only=relay` for one part); `npm run bench -- --record` appends a section here.\n';
  await appendFile(path, existing === null ? header + report : report);
  process.stdout.write(`\nappended to ${path}\n`);
}
