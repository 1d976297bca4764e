/**
 * 2,000 attestations from a kiosk process to two verifier processes through a real mosquitto, while the broker is
 * restarted twice, the kiosk is killed with SIGKILL and restarted, and one verifier is killed: every attestation
 * the kiosk enqueued gets exactly one log entry and one verdict; nothing lost, nothing doubled.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { auditLog } from '../verifier/audit/verify.ts';
import { openVerifier } from '../verifier/setup.ts';
import { openKioskState } from '../device/setup.ts';
import { MODEL, tempDir, waitFor, logSize, kioskTrust, logRecords, auditTrust } from './helpers/e2e.ts';
import { Mosquitto } from './helpers/mosquitto.ts';

// RELIABILITY_TOTAL=10000 runs the scaled-up version (faults at the same proportions); the suite runs 2,000.
const TOTAL = Number(process.env['RELIABILITY_TOTAL'] ?? 2000);
const at = (n: number) => Math.round((n * TOTAL) / 2000);
const children: ChildProcess[] = [];
let broker: Mosquitto | undefined;

afterAll(async () => {
  for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
  await broker?.stop();
});

interface Proc {
  child: ChildProcess;
  lines: string[];
  stderr: string;
}

function start(script: string, cfg: object): Proc {
  const child = spawn(process.execPath, ['--import', 'tsx', join(import.meta.dirname, 'helpers', script), JSON.stringify(cfg)], { stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(child);
  const p: Proc = { child, lines: [], stderr: '' };
  let buf = '';
  child.stdout!.on('data', (d: Buffer) => {
    buf += d.toString();
    const parts = buf.split('\n');
    buf = parts.pop()!;
    p.lines.push(...parts);
  });
  child.stderr!.on('data', (d: Buffer) => {
    p.stderr = (p.stderr + d.toString()).slice(-4000);
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

describe('reliability', () => {
  it(`delivers ${TOTAL} attestations exactly once through broker restarts, a kiosk SIGKILL and a verifier death`, async () => {
    broker = await Mosquitto.start();
    const verifierDir = await tempDir('bk-rel-ver-');
    const kioskDir = await tempDir('bk-rel-kiosk-');
    const ueid = 'kiosk-reliability';
    // Provision: verifier keys and store, the kiosk's key registered, alice enrolled.
    const admin = await openVerifier(verifierDir, { allowedModels: [MODEL.sha256] });
    const kioskState = await openKioskState(kioskDir, { keyStore: { kind: 'software' } });
    await admin.store.registerDevice({ ueid, kid: kioskState.keystore.kid, publicJwk: kioskState.keystore.publicJwk as never, site: 'reliability' });
    const { faceTemplate } = await import('./helpers/e2e.ts');
    await admin.store.enroll({ subject: 'alice', modality: 'face', template: faceTemplate(1), templateFormat: 'biokiosk-face/1', modelSha256: MODEL.sha256 });
    kioskState.close();
    const vcfg = (id: string) => ({ dir: verifierDir, brokerUrl: broker!.url, clientId: id, allowedModels: [MODEL.sha256] });
    const vA = start('verifier-process.ts', vcfg('verifier-a'));
    const vB = start('verifier-process.ts', vcfg('verifier-b'));
    await waitFor(() => vA.lines.includes('ready') && vB.lines.includes('ready'), 30_000, 'verifiers ready');
    const kcfg = { dir: kioskDir, brokerUrl: broker.url, ueid, total: TOTAL, fleetPublicJwk: admin.keys.fleet.publicJwk, verifierId: admin.keys.verifierId, verifierPublicJwk: admin.signer.publicJwk, logKeys: kioskTrust(admin).log.keys };
    const enqueued = new Set<string>();
    const collect = (p: Proc) => () => {
      for (const l of p.lines) if (l.startsWith('enqueued ')) enqueued.add(l.slice(9));
    };
    let kiosk = start('kiosk-process.ts', kcfg);
    const logged = () => logSize(admin);

    // Killed by its own progress (it creates attestations far faster than they are decided): mid-stream, with
    // attestations still to create and to deliver.
    await waitFor(() => (collect(kiosk)(), enqueued.size >= at(700)), 120_000, `${at(700)} enqueued`);
    await kill(kiosk);
    collect(kiosk)();
    expect(enqueued.size).toBeLessThan(TOTAL);
    kiosk = start('kiosk-process.ts', kcfg);
    await waitFor(async () => (await logged()) >= at(300), 120_000, `${at(300)} decisions`);
    await broker.restart();
    await waitFor(async () => (await logged()) >= at(1000), 240_000, `${at(1000)} decisions`);
    await broker.restart();
    await waitFor(async () => (await logged()) >= at(1300), 240_000, `${at(1300)} decisions`);
    await kill(vB);
    await waitFor(() => kiosk.lines.includes('drained'), 300_000, `the kiosk's outbox to drain (verifier A: ${vA.stderr.slice(-300)})`);
    collect(kiosk)();

    // Every enqueued attestation: exactly one log entry, a non-rejected decision, and (outbox empty) its verdict.
    expect(enqueued.size).toBeGreaterThanOrEqual(TOTAL - 5);
    const records = (await logRecords<{ ueid: string; att_id: string; decision: string; reasons: string[] }>(admin));
    const mine = records.filter((r) => r.ueid === ueid);
    const count = new Map<string, number>();
    for (const r of mine) count.set(r.att_id, (count.get(r.att_id) ?? 0) + 1);
    for (const id of enqueued) expect(count.get(id), id).toBe(1);
    expect([...count.values()].every((n) => n === 1)).toBe(true);
    expect(mine.filter((r) => r.decision === 'rejected')).toEqual([]);
    const reopened = await openKioskState(kioskDir, { keyStore: { kind: 'software' } });
    expect(reopened.outbox.size.entries).toBe(0);
    reopened.close();
    const report = await auditLog(admin.store.audit, auditTrust(admin));
    expect(report.ok).toBe(true);
    await admin.close();
  }, 900_000);
});
