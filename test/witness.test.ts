/**
 * The witness (c2sp.org/tlog-witness) over real HTTP on loopback, with real Ed25519 keys: a log grows and gets its
 * checkpoints cosigned, wrong old sizes get 409, bad requests 400/403/404, a rewritten log 422 and an alert with
 * evidence on disk; the state survives a restart; concurrent submissions cannot roll it back; the CLI.
 */
import { createHash } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { consistencyProof, emptyRoot, leafHash, rootOf } from '../protocol/merkle.ts';
import { addSignatures, NoteSigner, openCheckpoint, parseVkey, SIG_COSIGNATURE_V1, signCheckpoint, type NoteVerifier } from '../protocol/note.ts';
import { WitnessClient } from '../witness/client.ts';
import { loadWitnessKey } from '../witness/key.ts';
import { startWitnessServer, type WitnessServer } from '../witness/server.ts';
import { WitnessState } from '../witness/state.ts';
import { Witness, type WitnessAlert } from '../witness/witness.ts';
import { biokiosk, spawnBiokiosk } from './helpers/cli.ts';

const root = mkdtempSync(join(tmpdir(), 'biokiosk-witness-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));
let dirs = 0;
const freshDir = () => join(root, `w${++dirs}`);
const nowSeconds = () => Math.floor(Date.now() / 1000);

/** A log in memory: leaf hashes and a signing key; `tag` makes a different history from some index on. */
class TestLog {
  readonly leaves: Buffer[] = [];
  constructor(
    readonly signer: NoteSigner,
    private readonly tag = 'main',
  ) {}
  static create(origin: string): TestLog {
    return new TestLog(NoteSigner.generate(origin).signer);
  }
  get origin(): string {
    return this.signer.name;
  }
  growTo(n: number): this {
    while (this.leaves.length < n) this.leaves.push(leafHash(Buffer.from(`${this.origin} entry ${this.leaves.length} ${this.tag}`)));
    return this;
  }
  /** The same first `keep` leaves, then other entries: what a log rewriting its history would publish. */
  fork(keep: number, tag: string): TestLog {
    const f = new TestLog(this.signer, tag);
    f.leaves.push(...this.leaves.slice(0, keep));
    return f;
  }
  checkpoint(size = this.leaves.length, signers: NoteSigner[] = [this.signer]): string {
    const cp = { origin: this.origin, treeSize: size, rootHash: rootOf(this.leaves.slice(0, size)) };
    let note = signCheckpoint(cp, signers[0]!);
    for (const s of signers.slice(1)) note = addSignatures(note, signCheckpoint(cp, s).split('\n\n')[1]!);
    return note;
  }
  proof(from: number, to = this.leaves.length): Buffer[] {
    return consistencyProof(from, this.leaves.slice(0, to));
  }
}

interface Running {
  dir: string;
  witness: Witness;
  state: WitnessState;
  server: WitnessServer;
  client: WitnessClient;
  wkey: NoteVerifier;
  alerts: WitnessAlert[];
  stop(): Promise<void>;
}

async function startWitness(dir: string, logs: NoteVerifier[][], opts: { now?: () => number } = {}): Promise<Running> {
  const key = await loadWitnessKey(dir, { name: 'insurer.example/witness' });
  const state = await WitnessState.open(dir);
  const alerts: WitnessAlert[] = [];
  const witness = new Witness({ logs: new Map(logs.map((keys) => [keys[0]!.name, keys])), state, signer: key.signer, now: opts.now, onAlert: (a) => alerts.push(a) });
  const server = await startWitnessServer(witness, { host: '127.0.0.1', port: 0 });
  const wkey = parseVkey(key.vkey);
  return {
    dir,
    witness,
    state,
    server,
    client: new WitnessClient(server.url, wkey, { timeoutMs: 5000 }),
    wkey,
    alerts,
    async stop() {
      await server.close();
      await state.close();
    },
  };
}

async function post(url: string, body: string | Buffer, path = '/add-checkpoint', method = 'POST'): Promise<{ status: number; type: string; body: string }> {
  const res = await fetch(url + path, { method, body: method === 'GET' ? undefined : body });
  return { status: res.status, type: res.headers.get('content-type') ?? '', body: await res.text() };
}

const requestBody = (oldSize: number, proof: Buffer[], note: string) => `old ${oldSize}\n${proof.map((h) => h.toString('base64') + '\n').join('')}\n${note}`;

function expectCosigned(r: Awaited<ReturnType<WitnessClient['submit']>>): string[] {
  expect(r.kind, JSON.stringify(r)).toBe('cosigned');
  return r.kind === 'cosigned' ? r.lines : [];
}

describe('witness: a growing log', () => {
  const log = TestLog.create('biokiosk.example/verifier-1');
  let w: Running;

  it('cosigns the first checkpoint (old 0), then each larger one with a consistency proof', async () => {
    w = await startWitness(freshDir(), [[log.signer.verifier]]);
    log.growTo(1);
    let note = log.checkpoint();
    let lines = expectCosigned(await w.client.submit(note, 0, []));
    const opened = openCheckpoint(addSignatures(note, lines.join('')), [parseVkey(log.signer.vkey)], [w.wkey]);
    expect(opened.checkpoint.treeSize).toBe(1);
    expect(Math.abs(opened.witnessedBy.get('insurer.example/witness')! - nowSeconds())).toBeLessThanOrEqual(5);

    for (const [from, to] of [[1, 5], [5, 8], [8, 13]] as const) {
      log.growTo(to);
      note = log.checkpoint();
      lines = expectCosigned(await w.client.submit(note, from, log.proof(from)));
      expect(openCheckpoint(addSignatures(note, lines.join('')), [log.signer.verifier], [w.wkey]).checkpoint.treeSize).toBe(to);
    }
    // The same checkpoint again (old = size, no proof): cosigned again, the state stays.
    expectCosigned(await w.client.submit(note, 13, []));
    expect(w.state.get(log.origin)!.treeSize).toBe(13);
    expect(w.alerts).toEqual([]);
  });

  it('keeps its state in a 0600 file in a 0700 folder, and serves the latest cosigned note', async () => {
    const file = join(w.dir, 'witness-state.json');
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(statSync(w.dir).mode & 0o777).toBe(0o700);
    expect(statSync(join(w.dir, 'witness-key.json')).mode & 0o777).toBe(0o600);
    const doc = JSON.parse(readFileSync(file, 'utf8'));
    expect(doc.logs[log.origin].treeSize).toBe(13);
    expect(doc.logs[log.origin].rootHash).toBe(rootOf(log.leaves).toString('base64'));

    const latest = w.witness.latest(log.origin)!;
    const opened = openCheckpoint(latest, [log.signer.verifier], [w.wkey]);
    expect(opened.checkpoint.treeSize).toBe(13);
    expect(opened.witnessedBy.has('insurer.example/witness')).toBe(true);
    const byOrigin = await post(w.server.url, '', `/latest/${encodeURIComponent(log.origin)}`, 'GET');
    expect(byOrigin).toMatchObject({ status: 200, body: latest });
    const hash = createHash('sha256').update(log.origin).digest('hex');
    expect(await post(w.server.url, '', `/${hash}/checkpoint`, 'GET')).toMatchObject({ status: 200, body: latest });
    expect((await post(w.server.url, '', `/latest/${encodeURIComponent('nobody.example/log')}`, 'GET')).status).toBe(404);
    expect((await post(w.server.url, '', `/${'0'.repeat(64)}/checkpoint`, 'GET')).status).toBe(404);
  });

  it('answers 409 with its size when the old size is not the cosigned one, and cosigns once the client retries from there', async () => {
    log.growTo(20);
    const note = log.checkpoint();
    const raw = await post(w.server.url, requestBody(5, log.proof(5), note));
    expect(raw).toEqual({ status: 409, type: 'text/x.tlog.size', body: '13\n' });
    const r = await w.client.submit(note, 8, log.proof(8));
    expect(r).toEqual({ kind: 'conflict', size: 13 });
    if (r.kind !== 'conflict') return;
    expectCosigned(await w.client.submit(note, r.size, log.proof(r.size)));
    expect(w.state.get(log.origin)!.treeSize).toBe(20);
  });

  it('refuses a rewritten log with 422, raises an alert with the evidence on disk, and does not move', async () => {
    const cosigned = w.state.get(log.origin)!;
    // Same size, another root.
    const sameSize = log.fork(19, 'rewritten').growTo(20);
    const r1 = await w.client.submit(sameSize.checkpoint(), 20, []);
    expect(r1).toMatchObject({ kind: 'refused', status: 422 });
    // A larger tree that does not extend the cosigned one (entry 3 changed), with its own "consistency proof".
    const larger = log.fork(3, 'rewritten').growTo(30);
    const r2 = await w.client.submit(larger.checkpoint(), 20, larger.proof(20));
    expect(r2).toMatchObject({ kind: 'refused', status: 422 });
    expect(w.state.get(log.origin)).toEqual(cosigned);
    expect(JSON.parse(readFileSync(join(w.dir, 'witness-state.json'), 'utf8')).logs[log.origin].treeSize).toBe(20);

    expect(w.alerts.map((a) => a.kind)).toEqual(['fork', 'inconsistent']);
    const [fork, inconsistent] = w.alerts as [WitnessAlert, WitnessAlert];
    expect(fork.message).toContain(log.origin);
    expect(fork.message).toContain(cosigned.rootHash.toString('base64'));
    expect(fork.message).toContain(rootOf(sameSize.leaves).toString('base64'));
    expect(fork.cosigned).toEqual({ treeSize: 20, rootHash: cosigned.rootHash.toString('base64') });
    expect(inconsistent.submitted).toEqual({ treeSize: 30, rootHash: rootOf(larger.leaves).toString('base64') });
    expect(inconsistent.message).toMatch(/size 30.*cosigned size 20/);
    const files = readdirSync(join(w.dir, 'alerts'));
    expect(files).toHaveLength(2);
    expect(fork.evidenceFile && files.map((f) => join(w.dir, 'alerts', f))).toContain(fork.evidenceFile);
    expect(files.every((f) => f.endsWith('-biokiosk.example_verifier-1.txt'))).toBe(true);
    const evidence = readFileSync(inconsistent.evidenceFile!, 'utf8');
    expect(evidence).toContain(w.witness.latest(log.origin)!);
    expect(evidence).toContain(larger.checkpoint().split('\n\n')[0]);
    for (const h of larger.proof(20)) expect(evidence).toContain(h.toString('base64'));
    expect(statSync(inconsistent.evidenceFile!).mode & 0o777).toBe(0o600);

    // The fork is reported even when the submitter claims another old size (the answer is then 409); the
    // same evidence again raises the alert but writes no second file.
    const r3 = await w.client.submit(sameSize.checkpoint(), 5, []);
    expect(r3).toEqual({ kind: 'conflict', size: 20 });
    expect(w.alerts).toHaveLength(3);
    expect(w.alerts[2]).toMatchObject({ kind: 'fork', evidenceFile: undefined });
    const sameSize2 = log.fork(19, 'rewritten again').growTo(20);
    expect(await w.client.submit(sameSize2.checkpoint(), 20, [])).toMatchObject({ kind: 'refused', status: 422 });
    expect(w.alerts[3]!.evidenceFile).toBeDefined();
    expect(readdirSync(join(w.dir, 'alerts'))).toHaveLength(3);

    // A wrong proof for an honest extension is refused too (and cannot be told apart from a rewrite).
    log.growTo(25);
    const honest = log.checkpoint();
    const wrong = log.proof(20).map((h, i) => (i === 0 ? Buffer.alloc(32, 1) : h));
    expect(await w.client.submit(honest, 20, wrong)).toMatchObject({ kind: 'refused', status: 422 });
    expectCosigned(await w.client.submit(honest, 20, log.proof(20)));
  });

  it('keeps what it cosigned across a restart', async () => {
    const before = w.witness.latest(log.origin)!;
    const vkey = w.witness.vkey;
    await w.stop();
    w = await startWitness(w.dir, [[log.signer.verifier]]);
    expect(w.witness.vkey).toBe(vkey);
    expect(w.witness.latest(log.origin)).toBe(before);
    expect(await w.client.submit(log.checkpoint(), 0, [])).toEqual({ kind: 'conflict', size: 25 });
    log.growTo(40);
    expectCosigned(await w.client.submit(log.checkpoint(), 25, log.proof(25)));
  });

  it('processes concurrent submissions for one log one at a time: one wins, the others get 409 with its size', async () => {
    log.growTo(60);
    const sizes = [41, 44, 47, 50, 52, 53, 55, 57, 58, 60];
    const results = await Promise.all(sizes.map((s) => w.client.submit(log.checkpoint(s), 40, log.proof(40, s))));
    const won = results.flatMap((r, i) => (r.kind === 'cosigned' ? [sizes[i]!] : []));
    expect(won).toHaveLength(1);
    for (const r of results) if (r.kind !== 'cosigned') expect(r).toEqual({ kind: 'conflict', size: won[0] });
    expect(w.state.get(log.origin)!.treeSize).toBe(won[0]);

    // Racing from the winner's size to growing sizes, in waves: the state only ever moves forward.
    let size = won[0]!;
    log.growTo(100);
    for (let wave = 0; wave < 3; wave++) {
      const next = [size + 3, size + 1, size + 7, size + 5].filter((s) => s <= 100);
      const rs = await Promise.all(next.map((s) => w.client.submit(log.checkpoint(s), size, log.proof(size, s))));
      const wins = rs.flatMap((r, i) => (r.kind === 'cosigned' ? [next[i]!] : []));
      expect(wins).toHaveLength(1);
      expect(w.state.get(log.origin)!.treeSize).toBe(wins[0]);
      size = wins[0]!;
    }
    await w.stop();
  });
});

describe('witness: refusals', () => {
  const log = TestLog.create('biokiosk.example/verifier-2').growTo(10);
  let w: Running;

  it('404 for an unknown origin, 403 for a note no key of the log signed (or a bad signature by one)', async () => {
    w = await startWitness(freshDir(), [[log.signer.verifier]]);
    const other = TestLog.create('elsewhere.example/log').growTo(3);
    expect(await w.client.submit(other.checkpoint(), 0, [])).toMatchObject({ kind: 'refused', status: 404 });

    const impostor = NoteSigner.generate(log.origin).signer; // the log's name, another key
    expect(await w.client.submit(log.checkpoint(10, [impostor]), 0, [])).toMatchObject({ kind: 'refused', status: 403 });
    const stranger = NoteSigner.generate('someone.example/key').signer;
    expect(await w.client.submit(log.checkpoint(10, [stranger]), 0, [])).toMatchObject({ kind: 'refused', status: 403 });
    // The log's key ID with a signature that does not verify: a malformed note (SPEC: 403).
    const good = log.checkpoint(10);
    const [text, sig] = good.split('\n\n') as [string, string];
    const raw = Buffer.from(sig.split(' ')[2]!, 'base64');
    raw[10] = raw[10]! ^ 1;
    const tampered = `${text}\n\n\u2014 ${log.origin} ${raw.toString('base64')}\n`;
    expect(await w.client.submit(tampered, 0, [])).toMatchObject({ kind: 'refused', status: 403 });
    // A valid log signature next to a bad one by the same key: still refused.
    expect(await w.client.submit(`${tampered}${sig}`, 0, [])).toMatchObject({ kind: 'refused', status: 403 });
    // Another checkpoint's text under a genuine signature.
    const swapped = `${log.origin}\n9\n${rootOf(log.leaves.slice(0, 9)).toString('base64')}\n\n${sig}`;
    expect(await w.client.submit(swapped, 0, [])).toMatchObject({ kind: 'refused', status: 403 });
    expect(w.state.get(log.origin)).toBeUndefined();
    expect(w.alerts).toEqual([]);
  });

  it('400 for malformed bodies, old > size, and bodies past the size bound; 405/404 for other routes', async () => {
    const note = log.checkpoint(10);
    const proof = log.proof(4);
    const valid = requestBody(0, [], note);
    const bodies: (string | Buffer)[] = [
      '',
      '\n',
      'old\n\n' + note,
      'old 01\n\n' + note,
      'old -1\n\n' + note,
      'old 1.5\n\n' + note,
      'old  1\n\n' + note,
      'OLD 0\n\n' + note,
      'old 0' + note,
      'old 99999999999999999\n\n' + note,
      'old 11\n\n' + note, // old > checkpoint size
      'old 0\n' + note, // no empty line: the checkpoint's lines taken as proof lines
      'old 4\n' + proof.map((h) => h.toString('base64') + '\n').join(''), // truncated before the empty line
      valid.slice(0, valid.length - 20), // truncated signature
      valid.slice(0, valid.indexOf('\n\u2014')), // no signature at all
      'old 4\n!!!notbase64!!!\n\n' + note,
      `old 4\n${Buffer.alloc(31).toString('base64')}\n\n${note}`, // 31-byte hash
      `old 4\n${Buffer.alloc(32).toString('base64').replace('=', '')}\n\n${note}`, // unpadded
      `old 4\n${proof[0]!.toString('base64')} \n\n${note}`, // trailing space
      `old 4\r\n\r\n${note}`,
      requestBody(4, Array.from({ length: 64 }, () => Buffer.alloc(32, 2)), note), // 64 proof lines
      valid.replace('\n\n\u2014', '\n\n\n\u2014'), // an empty line among the signatures
      valid.replace(log.origin + '\n', log.origin + '\n\u0007'), // control character
      `old 0\n\n${log.origin}\n10\n${Buffer.alloc(31).toString('base64')}\n\n${note.split('\n\n')[1]}`, // 31-byte root
      'old 0\n\n' + 'x'.repeat(20_000) + '\n\n' + note.split('\n\n')[1], // note past 16 KiB
      'old 0\n\n' + 'a\n'.repeat(40_000), // past 64 KiB
      Buffer.concat([Buffer.from('old 0\n\n'), Buffer.from([0xff, 0xfe]), Buffer.from(note)]), // not UTF-8
    ];
    for (const b of bodies) {
      const r = await post(w.server.url, b);
      expect(r.status, `${JSON.stringify(b.toString().slice(0, 60))} -> ${r.status} ${r.body}`).toBe(400);
      expect(r.body.endsWith('\n') && r.body.split('\n').length === 2).toBe(true);
    }
    // 1 MiB: the connection is cut (or a 400 arrives first); the witness keeps serving.
    await post(w.server.url, 'old 0\n\n' + 'a'.repeat(2 * 1024 * 1024)).then(
      (r) => expect(r.status).toBe(400),
      () => undefined,
    );
    expect((await post(w.server.url, '', '/add-checkpoint', 'GET')).status).toBe(405);
    expect((await post(w.server.url, valid, '/add-checkpoint/')).status).toBe(404);
    expect((await post(w.server.url, valid, '/')).status).toBe(404);
    expect((await post(w.server.url, valid, `/latest/${encodeURIComponent(log.origin)}`)).status).toBe(405);
    expect((await post(w.server.url, '', '/latest/%E0%A4%A', 'GET')).status).toBe(400);
    expect(w.state.get(log.origin)).toBeUndefined();
    expectCosigned(await w.client.submit(note, 0, []));
  });

  it('survives fuzzed requests: truncations and byte flips of a valid one never get a cosignature or a 500', async () => {
    log.growTo(17);
    const note = log.checkpoint(17);
    const valid = Buffer.from(requestBody(10, log.proof(10, 17), note));
    let seed = 12345;
    const rand = (n: number) => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed % n;
    };
    const seen = new Set<number>();
    for (let i = 0; i < 150; i++) {
      const b = Buffer.from(valid);
      if (i % 3 === 0) {
        const r = await post(w.server.url, b.subarray(0, rand(b.length)));
        expect([400, 403], `truncated -> ${r.status} ${r.body}`).toContain(r.status);
        seen.add(r.status);
        continue;
      }
      const at = rand(b.length);
      const was = b[at]!;
      b[at] = i % 3 === 1 ? was ^ (1 << rand(8)) : 0x20 + rand(95);
      if (b[at] === was) continue;
      const r = await post(w.server.url, b);
      expect([400, 403, 404, 409, 422], `flip at ${at} -> ${r.status} ${r.body}`).toContain(r.status);
      seen.add(r.status);
    }
    expect(seen.has(400) && seen.has(403)).toBe(true);
    expect(w.state.get(log.origin)!.treeSize).toBe(10);
    expectCosigned(await w.client.submit(note, 10, log.proof(10, 17)));
  });

  it('size 0: the empty tree is cosigned, another root is a 422 and an alert', async () => {
    const empty = TestLog.create('biokiosk.example/empty');
    const e = await startWitness(freshDir(), [[empty.signer.verifier]]);
    expectCosigned(await e.client.submit(empty.checkpoint(0), 0, []));
    expect(e.state.get(empty.origin)!.rootHash).toEqual(emptyRoot());
    const bogus = signCheckpoint({ origin: empty.origin, treeSize: 0, rootHash: Buffer.alloc(32, 9) }, empty.signer);
    expect(await e.client.submit(bogus, 0, [])).toMatchObject({ kind: 'refused', status: 422 });
    expect(e.alerts.map((a) => a.kind)).toEqual(['fork']);
    // From size 0 the proof must be empty.
    empty.growTo(4);
    expect(await e.client.submit(empty.checkpoint(), 0, [Buffer.alloc(32)])).toMatchObject({ kind: 'refused', status: 422 });
    expectCosigned(await e.client.submit(empty.checkpoint(), 0, []));
    await e.stop();
  });

  it('the client rejects cosignatures that are not by the witness key it was given, and a witness that is not there', async () => {
    const pretend = parseVkey(NoteSigner.generate('insurer.example/witness', SIG_COSIGNATURE_V1).signer.vkey);
    const fooled = new WitnessClient(w.server.url, pretend, { timeoutMs: 5000 });
    log.growTo(18);
    await expect(fooled.submit(log.checkpoint(18), 17, log.proof(17, 18))).rejects.toMatchObject({ code: 'WitnessBadResponse' });
    const url = w.server.url;
    await w.stop();
    await expect(new WitnessClient(url, w.wkey, { timeoutMs: 2000 }).submit(log.checkpoint(18), 18, [])).rejects.toMatchObject({ code: 'WitnessUnreachable' });
    expect(() => new WitnessClient(url, log.signer.verifier)).toThrow(/cosignature\/v1/);
  });
});

describe('witness: keys, clock and state folder', () => {
  it('accepts either key of a log during a rotation, and refuses the old key once it is dropped', async () => {
    const oldKey = NoteSigner.generate('biokiosk.example/rotating').signer;
    const newKey = NoteSigner.generate('biokiosk.example/rotating').signer;
    const log = new TestLog(oldKey).growTo(3);
    const dir = freshDir();
    let w = await startWitness(dir, [[oldKey.verifier, newKey.verifier]]);
    expectCosigned(await w.client.submit(log.checkpoint(3, [oldKey]), 0, []));
    log.growTo(6);
    expectCosigned(await w.client.submit(log.checkpoint(6, [oldKey, newKey]), 3, log.proof(3)));
    log.growTo(9);
    const lines = expectCosigned(await w.client.submit(log.checkpoint(9, [newKey]), 6, log.proof(6)));
    openCheckpoint(addSignatures(log.checkpoint(9, [newKey]), lines.join('')), [newKey.verifier], [w.wkey]);
    // The stored note keeps the log signatures the witness verified.
    expect(openCheckpoint(w.witness.latest(log.origin)!, [newKey.verifier], [w.wkey]).checkpoint.treeSize).toBe(9);
    await w.stop();

    w = await startWitness(dir, [[newKey.verifier]]);
    log.growTo(12);
    expect(await w.client.submit(log.checkpoint(12, [oldKey]), 9, log.proof(9))).toMatchObject({ kind: 'refused', status: 403 });
    expectCosigned(await w.client.submit(log.checkpoint(12, [newKey]), 9, log.proof(9)));
    await w.stop();
  });

  it('never timestamps a cosignature earlier than the last one of that log, even when the clock steps back', async () => {
    let clock = 1_800_000_000;
    const log = TestLog.create('biokiosk.example/clock').growTo(2);
    const w = await startWitness(freshDir(), [[log.signer.verifier]], { now: () => clock });
    expect(await w.client.submit(log.checkpoint(), 0, [])).toMatchObject({ kind: 'cosigned', timestamp: 1_800_000_000 });
    clock -= 3600;
    log.growTo(4);
    expect(await w.client.submit(log.checkpoint(), 2, log.proof(2))).toMatchObject({ kind: 'cosigned', timestamp: 1_800_000_000 });
    clock += 7200;
    expect(await w.client.submit(log.checkpoint(), 4, [])).toMatchObject({ kind: 'cosigned', timestamp: 1_800_003_600 });
    await w.stop();
  });

  it('one writer per folder; a damaged state file stops the witness instead of resetting it', async () => {
    const dir = freshDir();
    const log = TestLog.create('biokiosk.example/state').growTo(2);
    const w = await startWitness(dir, [[log.signer.verifier]]);
    expectCosigned(await w.client.submit(log.checkpoint(), 0, []));
    await expect(WitnessState.open(dir)).rejects.toMatchObject({ code: 'WitnessBusy' });
    const reader = await WitnessState.open(dir, { readOnly: true });
    expect(reader.get(log.origin)!.treeSize).toBe(2);
    await w.stop();
    const file = join(dir, 'witness-state.json');
    writeFileSync(file, readFileSync(file, 'utf8').slice(0, 50));
    await expect(WitnessState.open(dir)).rejects.toMatchObject({ code: 'WitnessState' });
    await expect(loadWitnessKey(dir, { name: 'someone.else/witness' })).rejects.toMatchObject({ code: 'WitnessNameMismatch' });
    await expect(loadWitnessKey(freshDir())).rejects.toMatchObject({ code: 'NoWitnessKey' });
  });
});

describe('witness: the CLI', () => {
  it('`witness vkey`, then `witness serve` cosigning a checkpoint and alerting on a fork, then `witness latest`', async () => {
    const dir = freshDir();
    const log = TestLog.create('biokiosk.example/cli-log').growTo(5);

    const created = await biokiosk('witness', 'vkey', '--dir', dir, '--name', 'insurer.example/witness');
    expect(created.code, created.stderr).toBe(0);
    const vkey = created.stdout.trim();
    const wkey = parseVkey(vkey);
    expect(wkey).toMatchObject({ name: 'insurer.example/witness', type: SIG_COSIGNATURE_V1 });
    // Independent invocations in parallel: each CLI start loads every module.
    const [again, json, mismatch, noKey, noLog, badListen, help] = await Promise.all([
      biokiosk('witness', 'vkey', '--dir', dir),
      biokiosk('witness', 'vkey', '--dir', dir, '--json'),
      biokiosk('witness', 'vkey', '--dir', dir, '--name', 'other.example/witness'),
      biokiosk('witness', 'vkey', '--dir', freshDir()),
      biokiosk('witness', 'serve', '--dir', dir, '--name', 'insurer.example/witness'),
      biokiosk('witness', 'serve', '--dir', dir, '--name', 'insurer.example/witness', '--log', log.signer.vkey, '--listen', 'nowhere'),
      biokiosk('witness', 'serve', '--help'),
    ]);
    expect(again.stdout.trim()).toBe(vkey);
    expect(JSON.parse(json.stdout)).toEqual({ name: 'insurer.example/witness', vkey, created: false });
    for (const r of [mismatch, noKey, noLog, badListen]) {
      expect(r.code, r.stderr).toBe(2);
      expect(r.stderr.trim().split('\n'), r.stderr).toHaveLength(1);
    }
    expect(mismatch.stderr).toMatch(/WitnessNameMismatch: the witness key in .* is named insurer.example\/witness, not other.example\/witness/);
    expect(noLog.stderr).toMatch(/at least one --log/);
    expect(badListen.stderr).toMatch(/--listen takes HOST:PORT/);
    expect(help.code).toBe(0);
    expect(help.stdout).toContain('--log <vkey>');

    const proc = spawnBiokiosk(['witness', 'serve', '--dir', dir, '--name', 'insurer.example/witness', '--log', log.signer.vkey, '--listen', '127.0.0.1:0']);
    try {
      const line = await waitFor(() => proc.out.find((l) => l.includes('listening on')), proc);
      const url = /listening on (http:\/\/\S+)/.exec(line)![1]!;
      expect(line).toBe(`witness insurer.example/witness listening on ${url}`);
      await waitFor(() => proc.out[1], proc);
      expect(proc.out[1]).toBe(vkey);

      const client = new WitnessClient(url, wkey, { timeoutMs: 5000 });
      expectCosigned(await client.submit(log.checkpoint(), 0, []));
      await waitFor(() => proc.out.find((l) => l.startsWith('cosigned ')), proc);
      const fork = log.fork(4, 'rewritten').growTo(5);
      expect(await client.submit(fork.checkpoint(), 5, [])).toMatchObject({ kind: 'refused', status: 422 });
      await waitFor(() => (proc.err().includes('ALERT:') ? true : undefined), proc);
      expect(proc.err()).toMatch(/ALERT: fork: log biokiosk\.example\/cli-log signed two different trees of size 5/);

      // Read-only next to the running witness.
      const [latest, none] = await Promise.all([biokiosk('witness', 'latest', '--dir', dir, '--origin', log.origin), biokiosk('witness', 'latest', '--dir', dir, '--origin', 'nobody.example/log')]);
      expect(none.code).toBe(2);
      expect(latest.code, latest.stderr).toBe(0);
      const opened = openCheckpoint(latest.stdout, [log.signer.verifier], [wkey]);
      expect(opened.checkpoint).toEqual({ origin: log.origin, treeSize: 5, rootHash: rootOf(log.leaves) });
      expect(Math.abs(opened.witnessedBy.get('insurer.example/witness')! - nowSeconds())).toBeLessThanOrEqual(30);
    } finally {
      await proc.stop();
    }
    expect(proc.child.exitCode).toBe(0);
  });
});

async function waitFor<T>(probe: () => T | undefined, proc: ReturnType<typeof spawnBiokiosk>, ms = 30_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = probe();
    if (v !== undefined) return v;
    if (proc.child.exitCode !== null) throw new Error(`the witness exited (${proc.child.exitCode}): ${proc.err()}`);
    if (Date.now() > end) throw new Error(`timed out; stdout: ${proc.out.join('\n')}; stderr: ${proc.err()}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
