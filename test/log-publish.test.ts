/**
 * The audit log as others see it: published as C2SP tlog-tiles (read back and checked by a reader that knows only
 * the log's public key), cosigned by a witness before verdicts go out (the receipts carry the cosignature, the
 * kiosk checks it), and its checkpoint keys rotated with the rotation in the log.
 */
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SoftwareKeyStore } from '../device/keystore/software.ts';
import { openCheckpoint, parseVkey } from '../protocol/note.ts';
import { decodeEntryBundle, encodeTileIndex, entriesMatchTile, parseTilePath, rootFromTiles, TilePathError } from '../protocol/tiles.ts';
import { serveLog, type LogServer } from '../verifier/log-server.ts';
import { VerifierNode } from '../verifier/node.ts';
import { openVerifier, type VerifierInstance } from '../verifier/setup.ts';
import { Witnessing } from '../verifier/witnessing.ts';
import { WitnessClient } from '../witness/client.ts';
import { loadWitnessKey } from '../witness/key.ts';
import { startWitnessServer, type WitnessServer } from '../witness/server.ts';
import { WitnessState } from '../witness/state.ts';
import { Witness } from '../witness/witness.ts';
import { signedMessage } from './helpers/attest.ts';
import { biokiosk } from './helpers/cli.ts';
import { auditTrust, faceTemplate, logRecords, MODEL, startKiosk, tempDir, waitFor } from './helpers/e2e.ts';
import { auditLog } from '../verifier/audit/verify.ts';
import { Mosquitto } from './helpers/mosquitto.ts';

describe('tile paths (c2sp.org/tlog-tiles)', () => {
  it('encodes indexes in groups of three digits and parses full and partial tiles', () => {
    expect(encodeTileIndex(0)).toBe('000');
    expect(encodeTileIndex(67)).toBe('067');
    expect(encodeTileIndex(1234067)).toBe('x001/x234/067');
    expect(parseTilePath('0/x001/x234/067')).toEqual({ kind: 'hashes', level: 0, index: 1234067, width: 256 });
    expect(parseTilePath('2/005.p/17')).toEqual({ kind: 'hashes', level: 2, index: 5, width: 17 });
    expect(parseTilePath('entries/x001/000.p/255')).toEqual({ kind: 'entries', index: 1000, width: 255 });
    for (const bad of ['0/1234', '0/x1/000', '0/000.p/0', '0/000.p/256', '0/000.p/017', '0/000.p', '64/000', '00/000', 'x/000', '0', '0/000/']) {
      expect(() => parseTilePath(bad), bad).toThrow(TilePathError);
    }
  });
});

describe('the log published as tiles', () => {
  let v: VerifierInstance;
  let server: LogServer;
  const kiosk = SoftwareKeyStore.ephemeral();
  beforeAll(async () => {
    v = await openVerifier(await tempDir('bk-tiles-'), { allowedModels: [MODEL.sha256] });
    await v.store.enroll({ subject: 'alice-secret-name', modality: 'face', template: faceTemplate(1), templateFormat: 'biokiosk-face/1', modelSha256: MODEL.sha256 });
    await v.store.registerDevice({ ueid: 'k-tiles', kid: kiosk.kid, publicJwk: kiosk.publicJwk as never, site: 'Lobby of the clinic' });
    server = await serveLog(v.store.audit);
  });
  afterAll(async () => {
    await server?.close();
    await v?.close();
  });

  const get = async (path: string) => {
    const r = await fetch(`${server.url}/${path}`);
    if (r.status !== 200) throw new Error(`${path}: ${r.status} ${await r.text()}`);
    return new Uint8Array(await r.arrayBuffer());
  };

  it('a reader with only the log key recomputes every checkpoint root from the tiles, and the entries reveal nobody', async () => {
    expect((await fetch(`${server.url}/checkpoint`)).status).toBe(404);
    let seq = 0;
    // Batches of uneven sizes, so the tree crosses full tiles at levels 0 and 1 with partial ones at the edge.
    for (const n of [1, 2, 5, 60, 190, 3, 280, 17]) {
      const batch = [];
      for (let i = 0; i < n; i++) batch.push((await signedMessage(v.keys.fleet.publicJwk, kiosk, { ueid: 'k-tiles', seq: ++seq, sub: 'alice-secret-name', site: 'Lobby of the clinic' })).msg);
      await v.verifier.handleBatch(batch);
      const note = new TextDecoder().decode(await get('checkpoint'));
      const { checkpoint } = openCheckpoint(note, v.logSigner.verifiers);
      expect(checkpoint.treeSize).toBe(seq);
      expect(await rootFromTiles(checkpoint.treeSize, get)).toEqual(checkpoint.rootHash);
    }
    expect(seq).toBe(558);
    // Entry bundles: 32-byte commitments whose leaf hashes are the level-0 tile; nothing of the record in them.
    for (const [index, width] of [[0, 256], [1, 256], [2, 46]] as const) {
      const suffix = width === 256 ? '' : `.p/${width}`;
      const entries = decodeEntryBundle(await get(`tile/entries/${encodeTileIndex(index)}${suffix}`));
      expect(entries).toHaveLength(width);
      expect(entries.every((e) => e.length === 32)).toBe(true);
      expect(entriesMatchTile(entries, await get(`tile/0/${encodeTileIndex(index)}${suffix}`))).toBe(true);
      const bytes = Buffer.concat(entries);
      for (const secret of ['alice-secret-name', 'Lobby of the clinic', 'k-tiles', 'match']) expect(bytes.includes(Buffer.from(secret))).toBe(false);
    }
    // Level 1 tile: hashes of subtrees of 256 entries.
    expect((await get('tile/1/000.p/2')).length).toBe(64);
    // Full tiles are immutable and say so; beyond the tree there is nothing; it is read-only.
    const full = await fetch(`${server.url}/tile/0/000`);
    expect(full.headers.get('cache-control')).toMatch(/immutable/);
    expect((await fetch(`${server.url}/tile/0/002`)).status).toBe(404);
    expect((await fetch(`${server.url}/tile/0/002.p/47`)).status).toBe(404);
    expect((await fetch(`${server.url}/tile/1/001`)).status).toBe(404);
    expect((await fetch(`${server.url}/tile/0/x12`)).status).toBe(404);
    expect((await fetch(`${server.url}/checkpoint`, { method: 'POST', body: 'x' })).status).toBe(405);
    expect((await fetch(`${server.url}/etc/passwd`)).status).toBe(404);
    // A partial tile of an older size is still served: a reader checking an older checkpoint needs it.
    expect((await get('tile/0/002.p/10')).length).toBe(320);
  });
});

describe('a witness cosigning before verdicts go out', () => {
  let broker: Mosquitto;
  let v: VerifierInstance;
  let wserver: WitnessServer;
  let witness: Witness;
  let witnessVkey: string;
  const alerts: string[] = [];
  beforeAll(async () => {
    broker = await Mosquitto.start();
    v = await openVerifier(await tempDir('bk-witnessed-'), { allowedModels: [MODEL.sha256] });
    await v.store.enroll({ subject: 'alice', modality: 'face', template: faceTemplate(1), templateFormat: 'biokiosk-face/1', modelSha256: MODEL.sha256 });
    const wdir = await tempDir('bk-witness-');
    const key = await loadWitnessKey(wdir, { name: 'insurer.example/witness' });
    witnessVkey = key.vkey;
    witness = new Witness({ logs: new Map([[v.logSigner.origin, v.logSigner.verifiers]]), state: await WitnessState.open(wdir), signer: key.signer, onAlert: (a) => alerts.push(a.message) });
    wserver = await startWitnessServer(witness, { host: '127.0.0.1', port: 0 });
  });
  afterAll(async () => {
    await wserver?.close();
    await v?.close();
    await broker?.stop();
  });

  it("receipts carry the witness's cosignature, the kiosk checks and keeps it, the store has it, the auditor counts it", async () => {
    const w = parseVkey(witnessVkey);
    const refused: string[] = [];
    const witnessing = new Witnessing(v.store.audit, v.verifier.proofs, [new WitnessClient(wserver.url, w, { timeoutMs: 5000 })], { onRefused: (name, status, m) => refused.push(`${name} ${status} ${m}`) });
    const node = new VerifierNode(v.verifier, v.store, { brokerUrl: broker.url, clientId: 'witnessed-verifier', protocolVersion: 5, witnessing, witnessTimeoutMs: 5000 });
    await node.start();
    const kw = await startKiosk(broker.url, v, 'kiosk-ww', { witnesses: [witnessVkey] });
    try {
      await waitFor(() => kw.relay.connected, 10_000, 'kiosk connected');
      for (let i = 0; i < 5; i++) await kw.attester.attest({ subject: 'alice', modality: 'face', template: faceTemplate(1, 0.03), templateFormat: 'biokiosk-face/1', quality: 80, model: MODEL });
      kw.relay.nudge();
      await waitFor(() => kw.verdicts.length === 5, 20_000, 'five verdicts');
      expect(refused).toEqual([]);
      for (const x of kw.verdicts) {
        const opened = openCheckpoint(x.claims.receipt.checkpoint, v.logSigner.verifiers, [w]);
        expect([...opened.witnessedBy.keys()]).toEqual(['insurer.example/witness']);
        expect(Math.abs(opened.witnessedBy.get('insurer.example/witness')! - Date.now() / 1000)).toBeLessThan(60);
      }
      const latest = kw.kiosk.heads.latest()!;
      expect(latest.witnesses).toEqual(['insurer.example/witness']);
      // The five may be decided in more than one batch, all attested before any verdict (naming no head): the
      // kiosk's latest is the first head it accepted, the witness's and the store's the largest cosigned.
      const witnessed = Number(witness.latest(v.logSigner.origin)!.split('\n')[1]);
      expect(witnessed).toBeGreaterThanOrEqual(latest.treeSize);
      expect((await v.store.audit.latestCosigned())?.checkpoint.treeSize).toBe(witnessed);
      const report = await auditLog(v.store.audit, { ...auditTrust(v), witnesses: [w] });
      expect(report.ok).toBe(true);
      expect(report.independentCheckpoints).toBeGreaterThan(0);
      expect(alerts).toEqual([]);
    } finally {
      await kw.stop();
      await node.stop();
    }
  });

  it('a witness that is down delays nothing past the timeout: verdicts go out with the log signature alone', async () => {
    await wserver.close();
    const w = parseVkey(witnessVkey);
    const refused: string[] = [];
    const witnessing = new Witnessing(v.store.audit, v.verifier.proofs, [new WitnessClient(wserver.url, w, { timeoutMs: 500 })], { onRefused: (name, status, m) => refused.push(`${name} ${status} ${m}`) });
    const node = new VerifierNode(v.verifier, v.store, { brokerUrl: broker.url, clientId: 'witnessless-verifier', protocolVersion: 5, witnessing, witnessTimeoutMs: 800 });
    await node.start();
    const k = await startKiosk(broker.url, v, 'kiosk-nw', { witnesses: [witnessVkey] });
    try {
      await waitFor(() => k.relay.connected, 10_000, 'kiosk connected');
      await k.attester.attest({ subject: 'alice', modality: 'face', template: faceTemplate(1, 0.03), templateFormat: 'biokiosk-face/1', quality: 80, model: MODEL });
      k.relay.nudge();
      await waitFor(() => k.verdicts.length === 1, 20_000, 'the verdict');
      expect(openCheckpoint(k.verdicts[0]!.claims.receipt.checkpoint, v.logSigner.verifiers, [w]).witnessedBy.size).toBe(0);
      expect(refused.some((r) => r.includes('unreachable'))).toBe(true);
    } finally {
      await k.stop();
      await node.stop();
    }
  });
});

describe('rotating the checkpoint key', () => {
  it('both keys sign during the overlap, the rotation is an entry in the log, the old key is retired, the audit holds', async () => {
    const dir = await tempDir('bk-rotate-');
    const keyFile = join(await tempDir('bk-rotate-keys-'), 'log-key.json');
    const kiosk = SoftwareKeyStore.ephemeral();
    const open = () => openVerifier(dir, { allowedModels: [MODEL.sha256], logKey: keyFile });
    let v = await open();
    await v.store.enroll({ subject: 'alice', modality: 'face', template: faceTemplate(1), templateFormat: 'biokiosk-face/1', modelSha256: MODEL.sha256 });
    await v.store.registerDevice({ ueid: 'k-rot', kid: kiosk.kid, publicJwk: kiosk.publicJwk as never, site: 's' });
    const oldKeys = [...v.logSigner.verifiers];
    const batch = async (seq: number) => v.verifier.handleBatch([(await signedMessage(v.keys.fleet.publicJwk, kiosk, { ueid: 'k-rot', seq })).msg]);
    await batch(1);
    await v.close();
    const rotated = await biokiosk('verifier', 'log', 'rotate-key', '--log-key', keyFile);
    expect(rotated.code, rotated.stderr).toBe(0);
    const added = parseVkey(rotated.stdout.trim().replace(/^added /, ''));
    v = await open();
    await batch(2);
    const cp = (await v.store.audit.latestCheckpoint())!;
    // Signed by both: a kiosk that knows only the old key, and one that knows only the new one, both accept it.
    expect(openCheckpoint(cp.note, oldKeys).checkpoint.treeSize).toBe(cp.treeSize);
    expect(openCheckpoint(cp.note, [added]).checkpoint.treeSize).toBe(cp.treeSize);
    const records = await logRecords<{ type?: string; active?: string[] }>(v);
    expect(records.map((r) => r.type ?? 'decision')).toEqual(['decision', 'log_keys', 'decision']);
    expect(records[1]!.active).toHaveLength(2);
    await v.close();
    const id = added.keyId.toString(16).padStart(8, '0');
    const oldId = oldKeys[0]!.keyId.toString(16).padStart(8, '0');
    expect((await biokiosk('verifier', 'log', 'retire-key', '--log-key', keyFile, '--key-id', id.replace(/./, (c) => (c === '0' ? '1' : '0')))).code).toBe(2);
    const retired = await biokiosk('verifier', 'log', 'retire-key', '--log-key', keyFile, '--key-id', oldId);
    expect(retired.code, retired.stderr).toBe(0);
    expect((await biokiosk('verifier', 'log', 'retire-key', '--log-key', keyFile, '--key-id', id)).stderr).toMatch(/only active log key/);
    v = await open();
    await batch(3);
    const last = (await v.store.audit.latestCheckpoint())!;
    expect(() => openCheckpoint(last.note, oldKeys)).toThrow(/not signed by a log key/);
    expect(openCheckpoint(last.note, [added]).checkpoint.treeSize).toBe(last.treeSize);
    expect((await logRecords<{ type?: string }>(v)).filter((r) => r.type === 'log_keys')).toHaveLength(2);
    // The auditor checks every checkpoint with the ring's keys, retired ones too.
    expect((await auditLog(v.store.audit, auditTrust(v))).ok).toBe(true);
    await v.close();
    const audited = await biokiosk('verifier', 'audit', '--dir', dir, '--log-key', keyFile);
    expect(audited.code, audited.stderr).toBe(0);
    // An auditor without the key file gives the public keys; with only the new one, the old checkpoints do not verify.
    const partial = await biokiosk('verifier', 'audit', '--dir', dir, '--log-vkey', rotated.stdout.trim().replace(/^added /, ''));
    expect(partial.code).toBe(2);
    expect(partial.stderr).toMatch(/checkpoint_signature/);
  }, 120_000);
});
