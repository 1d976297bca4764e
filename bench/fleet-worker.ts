/**
 * Issue 13 benchmarks, run by bench/run.ts in their own process (prints one JSON line last):
 * - decisions/s end to end with 1, 2 and 3 verifier processes (`biokiosk verifier run`) on one PostgreSQL 15,
 *   side by side with one node on the embedded SQLite store, in the same run: 50 kiosks' connections (in a
 *   process of their own) publish pre-made attestations at once, and the clock stops when the last verdict
 *   has been published; CPU seconds of the verifier processes and of PostgreSQL per decision, from /proc;
 * - the same single PostgreSQL node with a witness (another process's HTTP server, c2sp tlog-witness): its
 *   throughput, and the time from each decision to the first witness cosignature covering its entry.
 * Every configuration starts from an empty store with the same devices and the same attestations.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { copyFile, mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mqtt from 'mqtt';
import pg from 'pg';
import { SoftwareKeyStore } from '../device/keystore/software.ts';
import { migratePostgres } from '../verifier/pg-store.ts';
import { openVerifier, openVerifierStore } from '../verifier/setup.ts';
import { signedMessage } from '../test/helpers/attest.ts';
import { BIN } from '../test/helpers/cli.ts';
import { faceTemplate, MODEL, waitFor } from '../test/helpers/e2e.ts';
import { freePort, Mosquitto } from '../test/helpers/mosquitto.ts';
import { startPostgres } from '../test/helpers/postgres.ts';
import { loadWitnessKey } from '../witness/key.ts';
import { startWitnessServer } from '../witness/server.ts';
import { WitnessState } from '../witness/state.ts';
import { Witness } from '../witness/witness.ts';

const DEVICES = 50;
const PER = Number(process.env['BENCH_FLEET_PER_DEVICE'] ?? 40);
const ROUNDS = Number(process.env['BENCH_FLEET_ROUNDS'] ?? 2);
const TOTAL = DEVICES * PER;
const TICK_MS = 10; // /proc/<pid>/stat counts CPU in clock ticks of 1/100 s on Linux
const dir = (p: string) => mkdtemp(join(tmpdir(), p));
const pct = (a: number[], p: number) => [...a].sort((x, y) => x - y)[Math.min(a.length - 1, Math.floor(a.length * p))]!;
const median = (a: number[]) => pct(a, 0.5);

/** CPU milliseconds (user + system) a process has used so far. */
async function cpuMs(pid: number): Promise<number> {
  try {
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14])) * TICK_MS; // utime, stime, cutime, cstime
  } catch {
    return 0;
  }
}

/** CPU milliseconds of a PostgreSQL server: the postmaster and every backend it forked. */
async function pgCpuMs(dataDir: string): Promise<number> {
  const postmaster = Number((await readFile(join(dataDir, 'postmaster.pid'), 'utf8')).split('\n')[0]);
  const { readdir } = await import('node:fs/promises');
  let total = 0;
  for (const e of await readdir('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    try {
      const stat = await readFile(`/proc/${e}/stat`, 'utf8');
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (Number(e) === postmaster || Number(f[1]) === postmaster) total += (Number(f[11]) + Number(f[12])) * TICK_MS;
    } catch {
      // gone meanwhile
    }
  }
  return total;
}

const broker = await Mosquitto.start();
const pgServer = await startPostgres();
const result: Record<string, unknown> = { devices: DEVICES, attestationsPerRound: TOTAL, rounds: ROUNDS };
const children: ChildProcess[] = [];
try {
  // The fleet's keys, once; every configuration's nodes get copies.
  const master = await dir('bk-bench-fleet-');
  const keysInst = await openVerifier(master, { allowedModels: [MODEL.sha256], id: 'bench-verifier', origin: 'bench.example/audit' });
  const logVkey = keysInst.logSigner.verifiers[0]!;
  const fleetKey = keysInst.keys.fleet.publicJwk;
  await keysInst.close();
  const keys = Array.from({ length: DEVICES }, () => SoftwareKeyStore.ephemeral());
  const ueids = keys.map((_, d) => `bench-${d}`);
  const msgs: Array<{ ueid: string; topic: string; payload: string }> = [];
  for (let s = 1; s <= PER; s++) {
    for (const [d, ueid] of ueids.entries()) {
      const m = (await signedMessage(fleetKey, keys[d]!, { ueid, seq: s, template: faceTemplate(1, 0.03) })).msg;
      msgs.push({ ueid, topic: m.topic, payload: m.payload.toString('base64') });
    }
  }
  const msgFile = join(await dir('bk-bench-fleet-msgs-'), 'round.json');
  await writeFile(msgFile, JSON.stringify(msgs));

  // The witness, in this process (its work is not charged to the verifiers).
  const wdir = await dir('bk-bench-witness-');
  const wkey = await loadWitnessKey(wdir, { name: 'bench.example/witness' });
  const witness = new Witness({ logs: new Map([[logVkey.name, [logVkey]]]), state: await WitnessState.open(wdir), signer: wkey.signer });
  const wserver = await startWitnessServer(witness, { host: '127.0.0.1', port: await freePort() });

  const sink = await mqtt.connectAsync(broker.url, { protocolVersion: 5 });
  let verdicts = 0;
  await sink.subscribeAsync('biokiosk/v1/+/verdicts', { qos: 1 });
  sink.on('message', () => verdicts++);
  let dbCount = 0;

  /** A fresh store with the devices registered and alice enrolled; returns its location. */
  const freshStore = async (kind: 'sqlite' | 'postgres', nodeDir: string): Promise<string | undefined> => {
    let store: string | undefined;
    if (kind === 'postgres') {
      store = await pgServer.createDatabase(`fleet_${dbCount++}`);
      await migratePostgres(store);
    }
    const admin = await openVerifierStore(nodeDir, { store });
    for (const [d, ueid] of ueids.entries()) await admin.store.registerDevice({ ueid, kid: keys[d]!.kid, publicJwk: keys[d]!.publicJwk as never, site: 'bench' });
    await admin.store.enroll({ subject: 'alice', modality: 'face', template: faceTemplate(1), templateFormat: 'biokiosk-face/1', modelSha256: MODEL.sha256 });
    await admin.close();
    return store;
  };

  const nodeDir = async (): Promise<string> => {
    const d = await dir('bk-bench-node-');
    await copyFile(join(master, 'verifier-keys.json'), join(d, 'verifier-keys.json'));
    await copyFile(join(master, 'log-key.json'), join(d, 'log-key.json'));
    return d;
  };

  const runConfig = async (kind: 'sqlite' | 'postgres', nodes: number, witnessed: boolean) => {
    const dirs = [];
    for (let i = 0; i < nodes; i++) dirs.push(await nodeDir());
    const store = await freshStore(kind, dirs[0]!);
    const procs = dirs.map((d, i) => {
      const args = [BIN, 'verifier', 'run', '--broker', broker.url, '--dir', d, '--workers', '1', '--allow-model', MODEL.sha256, '--id', 'bench-verifier'];
      if (store) args.push('--store', store);
      if (witnessed) args.push('--witness', `${wkey.vkey}@${wserver.url}`);
      const child = spawn(process.execPath, args, { stdio: ['ignore', 'ignore', 'pipe'] });
      children.push(child);
      let err = '';
      child.stderr!.on('data', (b: Buffer) => (err = (err + b.toString()).slice(-4000)));
      return { child, err: () => err, i };
    });
    for (const p of procs) await waitFor(() => p.err().includes('running on'), 60_000, `verifier node ${p.i} (${p.err()})`);
    const publisher = spawn(process.execPath, ['--import', 'tsx', join(import.meta.dirname, 'load-publisher.ts'), JSON.stringify({ url: broker.url, pki: null, rounds: [msgFile] })], { stdio: ['pipe', 'pipe', 'inherit'] });
    children.push(publisher);
    const lines: string[] = [];
    publisher.stdout!.on('data', (d: Buffer) => lines.push(...d.toString().trim().split('\n')));
    await waitFor(() => lines.includes('ready'), 30_000, 'the load publisher');
    const cpu0 = await Promise.all(procs.map((p) => cpuMs(p.child.pid!)));
    const pg0 = kind === 'postgres' ? await pgCpuMs(pgServer.dataDir) : 0;
    const before = verdicts;
    const t0 = performance.now();
    publisher.stdin!.write('go\n');
    await waitFor(() => verdicts - before >= TOTAL, 300_000, `${TOTAL} verdicts (${verdicts - before} so far; ${procs.map((p) => p.err().slice(-300)).join(' | ')})`);
    const ms = performance.now() - t0;
    const cpu1 = await Promise.all(procs.map((p) => cpuMs(p.child.pid!)));
    const pg1 = kind === 'postgres' ? await pgCpuMs(pgServer.dataDir) : 0;
    let cosign: { p50: number; p99: number; covered: number } | undefined;
    if (witnessed && store) {
      // Decision to the first cosignature covering its entry, from what the store recorded.
      const c = new pg.Client({ connectionString: store });
      await c.connect();
      const leaves = (await c.query('SELECT idx, record FROM audit_leaves ORDER BY idx')).rows as Array<{ idx: string; record: Buffer }>;
      const cos = (await c.query('SELECT tree_size, min(received_at) AS at FROM audit_cosignatures GROUP BY tree_size ORDER BY tree_size')).rows.map((r: { tree_size: string; at: string }) => ({ size: Number(r.tree_size), at: Number(r.at) }));
      await c.end();
      // The earliest cosignature of any tree at least this large.
      const earliest: number[] = new Array(cos.length);
      for (let i = cos.length - 1, m = Infinity; i >= 0; i--) earliest[i] = m = Math.min(m, cos[i]!.at);
      const lat: number[] = [];
      let j = 0;
      for (const l of leaves) {
        const idx = Number(l.idx);
        while (j < cos.length && cos[j]!.size <= idx) j++;
        if (j === cos.length) break;
        lat.push(earliest[j]! - (JSON.parse(l.record.toString('utf8')) as { decided_at: number }).decided_at);
      }
      // None: every batch answered before the witness did (the node's --witness-timeout), so nothing is covered.
      cosign = lat.length > 0 ? { p50: median(lat), p99: pct(lat, 0.99), covered: lat.length / leaves.length } : { p50: NaN, p99: NaN, covered: 0 };
    }
    publisher.kill();
    for (const p of procs) p.child.kill('SIGTERM');
    await Promise.all(procs.map((p) => new Promise((r) => (p.child.exitCode !== null ? r(null) : p.child.once('exit', r)))));
    const verifierCpu = cpu1.reduce((a, b, i) => a + b - cpu0[i]!, 0);
    return { perSecond: TOTAL / (ms / 1000), verifierCpuMsPerDecision: verifierCpu / TOTAL, pgCpuMsPerDecision: (pg1 - pg0) / TOTAL, cosign };
  };

  const configs: Array<{ name: string; kind: 'sqlite' | 'postgres'; nodes: number; witnessed: boolean }> = [
    { name: 'sqlite-1', kind: 'sqlite', nodes: 1, witnessed: false },
    { name: 'postgres-1', kind: 'postgres', nodes: 1, witnessed: false },
    { name: 'postgres-2', kind: 'postgres', nodes: 2, witnessed: false },
    { name: 'postgres-3', kind: 'postgres', nodes: 3, witnessed: false },
    { name: 'postgres-1-witnessed', kind: 'postgres', nodes: 1, witnessed: true },
  ];
  await runConfig('sqlite', 1, false); // warm-up: page cache, JIT of the publisher, the broker's sessions
  const rounds: Record<string, Array<Awaited<ReturnType<typeof runConfig>>>> = {};
  for (let r = 0; r < ROUNDS; r++) for (const c of configs) (rounds[c.name] ??= []).push(await runConfig(c.kind, c.nodes, c.witnessed));
  result['configs'] = Object.fromEntries(
    configs.map((c) => {
      const rs = rounds[c.name]!;
      return [c.name, { rounds: rs.map((x) => Math.round(x.perSecond)), perSecond: median(rs.map((x) => x.perSecond)), verifierCpuMsPerDecision: median(rs.map((x) => x.verifierCpuMsPerDecision)), pgCpuMsPerDecision: median(rs.map((x) => x.pgCpuMsPerDecision)), cosign: [...rs].reverse().find((x) => x.cosign && x.cosign.covered > 0)?.cosign ?? rs[rs.length - 1]!.cosign }];
    }),
  );
  await sink.endAsync();
  await wserver.close();
} finally {
  for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
  await broker.stop();
  await pgServer.cleanup();
}
process.stdout.write(JSON.stringify(result) + '\n');
