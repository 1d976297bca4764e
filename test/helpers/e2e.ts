/** Building blocks for end-to-end tests: a verifier and kiosks in this process, on a real broker. */
import { formatVkey } from '../../protocol/note.ts';
import type { AuditTrust } from '../../verifier/audit/verify.ts';
import { appendBatch } from '../../verifier/audit/log.ts';
import type { DecisionRecord, Receipt } from '../../protocol/claims.ts';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Attester } from '../../device/attester.ts';
import { Kiosk, type KioskAlarm, type KioskConfig } from '../../device/kiosk.ts';
import type { Relay, VerdictInfo } from '../../device/relay.ts';
import type { KeyStoreChoice, KioskState } from '../../device/setup.ts';
import { encodeFaceTemplate } from '../../models/face/template.ts';
import type { IClientOptions } from 'mqtt';
import { VerifierNode, type VerifierNodeOptions } from '../../verifier/node.ts';
import { openVerifier, type VerifierInstance } from '../../verifier/setup.ts';

export const MODEL = { name: 'face_descriptor_resnet29', sha256: 'ab'.repeat(32) };

/** A deterministic unit-length face embedding; `jitter` moves it a little (a second capture of the same face). */
export function embedding(seed: number, jitter = 0): Float32Array {
  const v = Float32Array.from({ length: 128 }, (_, i) => Math.sin(seed * 12.9898 + i * 78.233) + jitter * Math.cos(i * 3.1 + seed));
  const n = Math.hypot(...v);
  return v.map((x) => x / n);
}

export function faceTemplate(seed: number, jitter = 0): Uint8Array {
  return encodeFaceTemplate({ model: MODEL, quality: 80, embedding: embedding(seed, jitter) });
}

export async function tempDir(prefix: string): Promise<string> {
  return mkdtemp(join(tmpdir(), prefix));
}

export async function startVerifier(
  brokerUrl: string,
  dir: string,
  opts: { clientId?: string; version?: 4 | 5; allowedModels?: string[]; precheckWorkers?: number; mqtt?: Partial<IClientOptions>; node?: Partial<VerifierNodeOptions> } = {},
): Promise<{ v: VerifierInstance; node: VerifierNode }> {
  const v = await openVerifier(dir, { allowedModels: opts.allowedModels ?? [MODEL.sha256], precheckWorkers: opts.precheckWorkers });
  const node = new VerifierNode(v.verifier, v.store, { brokerUrl, clientId: opts.clientId ?? `verifier-${process.pid}-${Math.random().toString(36).slice(2, 8)}`, protocolVersion: opts.version ?? 5, mqtt: opts.mqtt, ...opts.node });
  await node.start();
  return { v, node };
}

export interface TestKiosk {
  ueid: string;
  kiosk: Kiosk;
  state: KioskState;
  attester: Attester;
  relay: Relay;
  verdicts: VerdictInfo[];
  alarms: KioskAlarm[];
  stop(): Promise<void>;
}

/** A kiosk built by the one factory (device/kiosk.ts), registered with `v` unless told not to. */
export async function startKiosk(
  brokerUrl: string,
  v: VerifierInstance,
  ueid: string,
  opts: { site?: string; version?: 4 | 5; dir?: string; register?: boolean; witnesses?: string[]; keyStore?: KeyStoreChoice; mqtt?: Partial<IClientOptions>; capture?: KioskConfig['capture']; policy?: KioskConfig['policy']; engines?: KioskConfig['engines']; publishRate?: KioskConfig['broker']['publishRate'] } = {},
): Promise<TestKiosk> {
  const kiosk = await Kiosk.create({
    dir: opts.dir ?? (await tempDir('bk-kiosk-')),
    ueid,
    site: opts.site ?? 'test-site',
    version: 'test',
    keyStore: opts.keyStore ?? { kind: 'software' },
    verifiers: kioskTrust(v, opts.witnesses),
    broker: { url: brokerUrl, protocolVersion: opts.version ?? 5, mqtt: opts.mqtt, publishRate: opts.publishRate },
    capture: opts.capture,
    policy: opts.policy,
    engines: opts.engines,
  });
  if (opts.register !== false) await v.store.registerDevice({ ueid, kid: kiosk.state.keystore.kid, publicJwk: kiosk.state.keystore.publicJwk as never, site: opts.site ?? 'test-site' });
  const verdicts: VerdictInfo[] = [];
  const alarms: KioskAlarm[] = [];
  kiosk.on('verdict', (x) => verdicts.push(x));
  kiosk.on('alarm', (a) => alarms.push(a));
  return {
    ueid,
    kiosk,
    state: kiosk.state,
    attester: kiosk.attester,
    relay: kiosk.relay,
    verdicts,
    alarms,
    stop: () => kiosk.close(),
  };
}

export async function waitFor(cond: () => boolean | Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** What a kiosk is configured with to trust this verifier: its verdict key, the fleet key, the log's keys. */
export function kioskTrust(v: VerifierInstance, witnesses: string[] = []): KioskConfig['verifiers'] {
  return { trusted: [{ id: v.keys.verifierId, publicJwk: v.signer.publicJwk as never }], fleetKey: v.keys.fleet.publicJwk, log: { keys: v.logSigner.verifiers.map(formatVkey), witnesses } };
}

/** Entries in the verifier's audit log. */
export async function logSize(v: VerifierInstance): Promise<number> {
  return v.store.audit.size();
}

/** The audit log's records, parsed, in order. */
export async function logRecords<T = Record<string, unknown>>(v: VerifierInstance): Promise<T[]> {
  const n = await v.store.audit.size();
  return (await v.store.audit.range(0, n)).map((l) => JSON.parse(l.record.toString('utf8')) as T);
}

/** The trust an auditor of this verifier's log starts from (every key its ring ever held). */
export function auditTrust(v: VerifierInstance): AuditTrust {
  return { logKeys: v.logSigner.allVerifiers };
}

/** Appends a record to the verifier's own log (one batch, a checkpoint) and returns a real receipt for it. */
export async function appendWithReceipt(v: VerifierInstance, key: string, record: DecisionRecord): Promise<Receipt> {
  const out = await v.store.batch((tx) => appendBatch(tx.audit, v.logSigner, [{ key, record }], Date.now()));
  const leaf = out.leaves[0]!;
  const [proof] = await v.verifier.proofs.prove([{ kind: 'inclusion', index: leaf.index, size: out.checkpoint.treeSize }], out.known);
  return {
    leafIndex: leaf.index,
    treeSize: out.checkpoint.treeSize,
    rootHash: out.checkpoint.rootHash.toString('base64url'),
    inclusionProof: proof!.map((h) => h.toString('base64url')),
    checkpoint: out.checkpoint.note,
    entry: record,
    salt: leaf.salt.toString('base64url'),
    consistency: null,
  };
}
