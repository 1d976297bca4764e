/**
 * A fleet on separate hosts: three verifier processes (`biokiosk verifier run`), each in its own network namespace
 * with its own address, sharing one PostgreSQL 15 and one mosquitto in a fourth; kiosk processes and a witness
 * (`biokiosk witness serve`, another party's process) in the root namespace. 4,000 attestations (10,000 with FLEET_TOTAL=10000) while one
 * verifier is killed with SIGKILL mid-batch, PostgreSQL is restarted and the broker is restarted: each attestation
 * gets exactly one log entry and one verdict, none rejected, every receipt verifies (a kiosk settles an attempt
 * only on a receipt it checked against the log's keys and the witness), and the witness cosigns throughout.
 * Then an insider rewrites one entry in the database, hashes and all: the witness refuses to cosign and raises
 * an alert, kiosks refuse the next receipts, and `verifier audit` against the witness's checkpoint names the entry.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { copyFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { openKioskState } from '../device/setup.ts';
import { canonicalBytes } from '../protocol/canonical.ts';
import { nodeHash, perfectSubtrees } from '../protocol/merkle.ts';
import { entryLeafHash } from '../verifier/audit/log.ts';
import { encodeRoots } from '../verifier/audit/store.ts';
import { LATEST_SCHEMA } from '../verifier/migrations.ts';
import { openVerifierStore } from '../verifier/setup.ts';
import { biokiosk, BIN } from './helpers/cli.ts';
import { faceTemplate, MODEL, tempDir, waitFor } from './helpers/e2e.ts';
import { freePort, Mosquitto } from './helpers/mosquitto.ts';
import { createNetwork, type Network } from './helpers/netns.ts';
import { startPostgres, type PgServer } from './helpers/postgres.ts';

const KIOSKS = 4;
// FLEET_TOTAL=10000 is the full run (`npm run bench -- --only=fleet-10k` runs it and records the result);
// the suite runs 4,000 with the faults at the same proportions, to stay within CI's time.
const TOTAL = Math.round(Number(process.env['FLEET_TOTAL'] ?? 4000) / KIOSKS) * KIOSKS;
const PER_KIOSK = TOTAL / KIOSKS;
const at = (n: number) => Math.round((n * TOTAL) / 10_000);

interface Proc {
  child: ChildProcess;
  lines: string[];
  stderr: string;
}

const procs: Proc[] = [];
let net: Network | undefined;
let pgServer: PgServer | undefined;
let broker: Mosquitto | undefined;

afterAll(async () => {
  for (const p of procs) if (p.child.exitCode === null) p.child.kill('SIGKILL');
  await broker?.stop();
  await pgServer?.cleanup();
  await net?.destroy();
}, 60_000);

function watch(child: ChildProcess): Proc {
  const p: Proc = { child, lines: [], stderr: '' };
  procs.push(p);
  let buf = '';
  child.stdout!.on('data', (d: Buffer) => {
    buf += d.toString();
    const parts = buf.split('\n');
    buf = parts.pop()!;
    p.lines.push(...parts);
  });
  child.stderr!.on('data', (d: Buffer) => {
    p.stderr = (p.stderr + d.toString()).slice(-20_000);
  });
  return p;
}

async function kill(p: Proc): Promise<void> {
  if (p.child.exitCode !== null) return;
  await new Promise<void>((r) => {
    p.child.once('exit', () => r());
    p.child.kill('SIGKILL');
  });
}

/** What an insider with the database does: one entry's record changed, and every hash above it made to agree. */
async function rewriteEntry(url: string, index: number, change: (r: Record<string, unknown>) => void): Promise<void> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    await c.query('BEGIN');
    await c.query('SET LOCAL session_replication_role = replica'); // the append-only triggers off
    const leaf = (await c.query('SELECT record, salt FROM audit_leaves WHERE idx = $1', [index])).rows[0] as { record: Buffer; salt: Buffer };
    const record = JSON.parse(leaf.record.toString('utf8')) as Record<string, unknown>;
    change(record);
    const bytes = canonicalBytes(record);
    await c.query('UPDATE audit_leaves SET record = $2, leaf_hash = $3 WHERE idx = $1', [index, bytes, entryLeafHash(leaf.salt, bytes)]);
    const hashAt = async (level: number, i: number): Promise<Buffer | undefined> =>
      level === 0 ? (await c.query('SELECT leaf_hash AS h FROM audit_leaves WHERE idx = $1', [i])).rows[0]?.h : (await c.query('SELECT hash AS h FROM audit_nodes WHERE level = $1 AND idx = $2', [level, i])).rows[0]?.h;
    for (let level = 1; ; level++) {
      const i = Math.floor(index / 2 ** level);
      if (!(await hashAt(level, i))) break;
      const h = nodeHash((await hashAt(level - 1, 2 * i))!, (await hashAt(level - 1, 2 * i + 1))!);
      await c.query('UPDATE audit_nodes SET hash = $3 WHERE level = $1 AND idx = $2', [level, i, h]);
    }
    const size = Number((await c.query('SELECT count(*) AS n FROM audit_leaves')).rows[0].n);
    const roots = [];
    for (const id of perfectSubtrees(size)) roots.push((await hashAt(id.level, id.index))!);
    await c.query('UPDATE audit_frontier SET roots = $1 WHERE id = 1', [encodeRoots(roots)]);
    await c.query('COMMIT');
  } finally {
    await c.end();
  }
}

describe('verifiers on separate hosts', () => {
  it(`${TOTAL} attestations, three verifier hosts, one PostgreSQL: a node killed, the database and the broker restarted, a witness cosigning; an insider rewrite caught`, async () => {
    net = await createNetwork(['db', 'v1', 'v2', 'v3']);
    const db = net.hosts['db']!;
    pgServer = await startPostgres({ listen: db.address, netns: db.ns });
    const url = await pgServer.createDatabase('fleet');
    broker = await Mosquitto.start({ host: db.address, netns: db.ns });

    // The fleet's keys, made once and copied to each verifier host (every node signs for the same log).
    const master = await tempDir('bk-fleet-keys-');
    const keysOut = await biokiosk('verifier', 'keys', '--dir', master, '--id', 'fleet-verifier', '--origin', 'city.example/audit');
    expect(keysOut.code, keysOut.stderr).toBe(0);
    const keys = JSON.parse(keysOut.stdout) as { log: { origin: string; keys: string[] }; fleetKey: object; verdictKey: object; verifierId: string };
    const migrated = await biokiosk('verifier', 'migrate', '--store', url);
    expect(migrated.code, migrated.stderr).toBe(0);
    expect(migrated.stdout).toContain(`schema version 0 -> ${LATEST_SCHEMA}`);
    expect(migrated.stdout).not.toContain(pgServer.password);

    // The witness: another party's process, knowing only the log's public key.
    const witnessDir = await tempDir('bk-fleet-witness-');
    const wv = await biokiosk('witness', 'vkey', '--dir', witnessDir, '--name', 'insurer.example/witness');
    expect(wv.code, wv.stderr).toBe(0);
    const witnessVkey = wv.stdout.trim();
    const witnessPort = await freePort();
    const witness = watch(spawnNode([BIN, 'witness', 'serve', '--dir', witnessDir, '--name', 'insurer.example/witness', '--log', keys.log.keys[0]!, '--listen', `${net.bridgeAddress}:${witnessPort}`]));
    await waitFor(() => witness.lines.some((l) => l.includes('listening on')), 60_000, `the witness to listen (${witness.stderr})`);
    const witnessUrl = `http://${net.bridgeAddress}:${witnessPort}`;

    // Kiosks registered, alice enrolled, through the fleet's store.
    const admin = await openVerifierStore(master, { store: url });
    const kioskDirs: string[] = [];
    for (let i = 0; i < KIOSKS; i++) {
      const dir = await tempDir(`bk-fleet-kiosk${i}-`);
      const st = await openKioskState(dir, { keyStore: { kind: 'software' } });
      await admin.store.registerDevice({ ueid: `kiosk-${i}`, kid: st.keystore.kid, publicJwk: st.keystore.publicJwk as never, site: `pharmacy-${i}` });
      st.close();
      kioskDirs.push(dir);
    }
    await admin.store.enroll({ subject: 'alice', modality: 'face', template: faceTemplate(1), templateFormat: 'biokiosk-face/1', modelSha256: MODEL.sha256 });
    await admin.close();

    const hostDirs: Record<string, string> = {};
    for (const h of ['v1', 'v2', 'v3']) {
      const d = await tempDir(`bk-fleet-${h}-`);
      await copyFile(join(master, 'verifier-keys.json'), join(d, 'verifier-keys.json'));
      await copyFile(join(master, 'log-key.json'), join(d, 'log-key.json'));
      hostDirs[h] = d;
    }
    const startVerifier = (h: string): Proc =>
      watch(
        net!.exec(h, process.execPath, [BIN, 'verifier', 'run', '--broker', broker!.url, '--store', url, '--dir', hostDirs[h]!, '--witness', `${witnessVkey}@${witnessUrl}`, '--workers', '1', '--allow-model', MODEL.sha256], {
          stdio: ['ignore', 'pipe', 'pipe'],
        }),
      );
    const verifiers: Record<string, Proc> = { v1: startVerifier('v1'), v2: startVerifier('v2'), v3: startVerifier('v3') };
    for (const [h, p] of Object.entries(verifiers)) await waitFor(() => p.stderr.includes('running on'), 60_000, `verifier ${h} to start (${p.stderr})`);

    const kiosks = kioskDirs.map((dir, i) =>
      watch(
        spawnNode([
          '--import',
          'tsx',
          join(import.meta.dirname, 'helpers', 'kiosk-process.ts'),
          JSON.stringify({ dir, brokerUrl: broker!.url, ueid: `kiosk-${i}`, total: PER_KIOSK, fleetPublicJwk: keys.fleetKey, verifierId: keys.verifierId, verifierPublicJwk: keys.verdictKey, logKeys: keys.log.keys, witnesses: [witnessVkey], site: `pharmacy-${i}` }),
        ]),
      ),
    );
    let probe = await reconnect(undefined, url);
    const logged = async (): Promise<number> => {
      try {
        return Number((await probe.query('SELECT count(*) AS n FROM audit_leaves')).rows[0].n);
      } catch {
        return -1;
      }
    };
    const context = () => Object.entries(verifiers).map(([h, p]) => `${h}: ${p.stderr.slice(-400)}`).join('\n');
    const t0 = Date.now();
    const mark = async (what: string) => console.log(`${what}: ${((Date.now() - t0) / 1000).toFixed(1)} s, ${await logged()} entries`);
    await waitFor(async () => (await logged()) >= at(2500), 240_000, `${at(2500)} decisions\n${context()}`);
    // Mid-batch: verifier v2 is deciding (the stream is shared three ways) when it is killed.
    await mark(`${at(2500)}`);
    await kill(verifiers['v2']!);
    await waitFor(async () => (await logged()) >= at(5000), 240_000, `${at(5000)} decisions\n${context()}`);
    await mark(`${at(5000)}`);
    await pgServer.restart();
    probe = await reconnect(probe, url);
    verifiers['v2'] = startVerifier('v2');
    await waitFor(async () => (await logged()) >= at(7000), 240_000, `${at(7000)} decisions\n${context()}`);
    await mark(`${at(7000)}`);
    await broker.restart();
    for (const [i, k] of kiosks.entries()) await waitFor(() => k.lines.includes('drained'), 300_000, `kiosk-${i} to drain\n${context()}`);
    await mark('drained');
    await probe.end();

    // Exactly once, nothing rejected, every verdict's receipt accepted by its kiosk.
    const c = await reconnect(undefined, url);
    const rows = (await c.query("SELECT record FROM audit_leaves WHERE record_key LIKE 'att:%' ORDER BY idx")).rows as Array<{ record: Buffer }>;
    const records = rows.map((r) => JSON.parse(r.record.toString('utf8')) as { ueid: string; att_id: string; decision: string; reasons: string[] });
    expect(records).toHaveLength(TOTAL);
    for (const [i, k] of kiosks.entries()) {
      const enqueued = new Set(k.lines.filter((l) => l.startsWith('enqueued ')).map((l) => l.slice(9)));
      expect(enqueued.size).toBe(PER_KIOSK);
      const mine = records.filter((r) => r.ueid === `kiosk-${i}`);
      expect(new Set(mine.map((r) => r.att_id))).toEqual(enqueued);
      expect(mine).toHaveLength(PER_KIOSK);
      expect(mine.filter((r) => r.decision !== 'match')).toEqual([]);
      const settled = new Set(k.lines.filter((l) => l.startsWith('verdict ')).map((l) => l.split(' ')[1]));
      expect(settled).toEqual(enqueued);
      expect(k.lines.filter((l) => l.startsWith('alarm ') && l.includes('verdict_refused'))).toEqual([]);
    }
    // The witness cosigned throughout: checkpoints before and after every fault carry its cosignature.
    const cosigned = (await c.query('SELECT tree_size FROM audit_cosignatures ORDER BY tree_size')).rows.map((r: { tree_size: number }) => Number(r.tree_size));
    for (const mark of [1000, 3000, 6000, 9000].map(at)) expect(cosigned.some((s) => Math.abs(s - mark) <= Math.max(300, at(500))), `a cosigned checkpoint near ${mark}`).toBe(true);
    const latest = await biokiosk('witness', 'latest', '--dir', witnessDir, '--origin', keys.log.origin);
    expect(latest.code, latest.stderr).toBe(0);
    const witnessNote = join(witnessDir, '..', `witness-latest-${Date.now()}.txt`);
    await writeFile(witnessNote, latest.stdout);
    const heads = await biokiosk('kiosk', 'heads', '--dir', kioskDirs[0]!);
    const headsFile = join(kioskDirs[0]!, '..', `heads-${Date.now()}.json`);
    await writeFile(headsFile, heads.stdout);
    const kept = JSON.parse(heads.stdout) as { checkpoints: Array<{ witnesses: string[] }> };
    expect(kept.checkpoints.some((h) => h.witnesses.includes('insurer.example/witness'))).toBe(true);
    const audit = ['verifier', 'audit', '--store', url, '--dir', master, '--witness-vkey', witnessVkey, '--known-heads', witnessNote, headsFile];
    const ok = await biokiosk(...audit);
    expect(ok.code, ok.stderr).toBe(0);

    // The insider: an entry in the middle said match; now it says no_match, with every hash above it recomputed.
    const victim = at(4321);
    await rewriteEntry(url, victim, (r) => {
      r['decision'] = 'no_match';
      r['score'] = 0.1;
    });
    const caught = await biokiosk(...audit);
    expect(caught.code).toBe(2);
    expect(caught.stderr).toMatch(/cosigned by insurer\.example\/witness .* is not the tree the first \d+ entries give: the log was rewritten/);
    const bracket = /entry (\d+) was tampered with: an entry in \[(\d+), (\d+)\)/.exec(caught.stderr);
    expect(bracket, caught.stderr).not.toBeNull();
    expect(Number(bracket![2])).toBeLessThanOrEqual(victim);
    expect(Number(bracket![3])).toBeGreaterThan(victim);
    // The log goes on on top of the rewritten tree: the witness refuses it, loudly, and kiosks refuse the receipts.
    const more = watch(
      spawnNode([
        '--import',
        'tsx',
        join(import.meta.dirname, 'helpers', 'kiosk-process.ts'),
        JSON.stringify({ dir: kioskDirs[0]!, brokerUrl: broker.url, ueid: 'kiosk-0', total: PER_KIOSK + 20, fleetPublicJwk: keys.fleetKey, verifierId: keys.verifierId, verifierPublicJwk: keys.verdictKey, logKeys: keys.log.keys, witnesses: [witnessVkey] }),
      ]),
    );
    await waitFor(() => witness.stderr.includes('ALERT'), 120_000, `the witness to raise an alert (${witness.stderr.slice(-500)})`);
    expect(witness.stderr).toMatch(/ALERT: .*city\.example\/audit/);
    await waitFor(() => Object.values(verifiers).some((p) => /ALERT: witness insurer\.example\/witness did not cosign/.test(p.stderr)), 60_000, 'a verifier to report the refusal');
    await waitFor(() => more.lines.some((l) => l.startsWith('alarm ') && l.includes('verdict_refused') && l.includes('inconsistent')), 60_000, 'the kiosk to refuse a receipt of the rewritten log');
    await c.end();
  }, 600_000);
});

/** A process in the root namespace (kiosks, the witness, the CLI): the side of the bridge the test runs on. */
function spawnNode(args: string[]): ChildProcess {
  return spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
}

async function reconnect(old: pg.Client | undefined, url: string): Promise<pg.Client> {
  await old?.end().catch(() => {});
  const deadline = Date.now() + 30_000;
  for (;;) {
    const c = new pg.Client({ connectionString: url });
    try {
      await c.connect();
      c.on('error', () => {});
      return c;
    } catch (e) {
      if (Date.now() > deadline) throw e;
      await new Promise((r) => setTimeout(r, 200));
    }
  }
}
