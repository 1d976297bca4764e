/**
 * Fingerprint accuracy on real captures, honestly: every set (subfolder) of a folder given by path, FVC protocol,
 * per set and pooled, with which sets the engine was tuned and calibrated on printed beside each row, and NBIS
 * (mindtct + bozorth3, through Debian's libfprint) side by side in the same run.
 *
 *   npx tsx bench/fingerprint-real.ts --data ../shared/data/fingerprint [--sets A,B] [--no-peer] [--json]
 *   npm run bench -- --only=fingerprint-real --data ../shared/data/fingerprint
 *
 * Per set (folders of `{finger}_{impression}.{png,tif,bmp,pgm,...}`, as `biokiosk eval` reads them):
 *  - genuine pairs: every pair of impressions of one finger; impostor pairs: every pair of impressions of different
 *    fingers (FVC's "all" impostors: 2,880 for 10 x 8, so FMR 0.1% is measurable, if barely);
 *  - EER, FNMR at FMR 1% and 0.1% (with the thresholds that give them), FMR and FNMR at the engine's default
 *    threshold, with the counts;
 *  - quality: the share of captures the kiosk would retake (quality below the engine's retry level), and FNMR at the
 *    default threshold over genuine pairs of accepted captures against all genuine pairs;
 *  - the peer protocol (the one NBIS runs): enroll each finger's first impression, verify its 7 others and the
 *    9 other fingers' first impressions: our decisions at the default threshold next to NBIS's at bozorth3's 40.
 * Pooled: the genuine and impostor scores of the sets together (impostors stay within a set), over all sets, over
 * the calibration sets and over the held-out sets.
 *
 * The peer needs Debian's libfprint-2-2, gir1.2-fprint-2.0 and python3-gi; as root the bench installs them with
 * apt-get when they are missing; otherwise it says so and runs without the peer.
 */
import { execFile, spawnSync } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { loadDataset } from '../models/evaluation/dataset.ts';
import { errorRates } from '../models/evaluation/metrics.ts';
import { FingerprintEngine } from '../models/fingerprint/engine.ts';
import { decodeGray } from '../models/fingerprint/extract/index.ts';
import { RETRY_BELOW } from '../models/fingerprint/extract/quality.ts';
import { FINGERPRINT_DEFAULT_THRESHOLD } from '../models/fingerprint/matcher/mcc.ts';
import { CALIBRATION_SETS, TUNED_SETS } from './fingerprint-sets.ts';
import { arg, pct } from './report-helpers.ts';

const run = promisify(execFile);



interface Capture {
  finger: string;
  template: Uint8Array | null;
  quality: number;
  minutiae: number;
  ms: number;
  width: number;
  height: number;
  path: string;
}

interface Scores {
  genuine: number[];
  impostor: number[];
  /** Genuine pairs whose two captures pass the quality check. */
  genuineAccepted: number[];
}

const median = (a: number[]) => {
  const s = [...a].sort((x, y) => x - y);
  return s.length ? (s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2) : NaN;
};

function rates(s: Scores, threshold: number) {
  const r = errorRates(Float64Array.from(s.genuine), Float64Array.from(s.impostor), [1e-2, 1e-3]);
  const falseMatches = s.impostor.filter((v) => v >= threshold).length;
  const falseNonMatches = s.genuine.filter((v) => v < threshold).length;
  const acceptedMisses = s.genuineAccepted.filter((v) => v < threshold).length;
  return {
    genuine: s.genuine.length,
    impostor: s.impostor.length,
    eer: r.eer.value,
    fnmrAt1: r.fnmrAt[0]!.fnmr,
    thresholdAt1: r.fnmrAt[0]!.threshold,
    fnmrAt01: r.fnmrAt[1]!.measurable ? r.fnmrAt[1]!.fnmr : null,
    thresholdAt01: r.fnmrAt[1]!.measurable ? r.fnmrAt[1]!.threshold : null,
    atDefault: { threshold, fmr: falseMatches / s.impostor.length, falseMatches, fnmr: falseNonMatches / s.genuine.length, falseNonMatches },
    accepted: { genuine: s.genuineAccepted.length, fnmr: s.genuineAccepted.length ? acceptedMisses / s.genuineAccepted.length : null, falseNonMatches: acceptedMisses },
  };
}

/** A python3 that can load libfprint's GObject bindings, installing Debian's packages as root when they are missing. */
function findPeerPython(): string | null {
  const candidates = ['/usr/bin/python3', 'python3'];
  const works = (py: string) => spawnSync(py, ['-c', "import gi; gi.require_version('FPrint', '2.0'); from gi.repository import FPrint"], { stdio: 'ignore' }).status === 0;
  for (const py of candidates) if (works(py)) return py;
  if (process.getuid?.() === 0 && spawnSync('apt-get', ['--version'], { stdio: 'ignore' }).status === 0) {
    process.stderr.write('installing the NBIS peer: apt-get install libfprint-2-2 gir1.2-fprint-2.0 python3-gi\n');
    spawnSync('apt-get', ['install', '-y', '--no-install-recommends', 'libfprint-2-2', 'gir1.2-fprint-2.0', 'python3-gi'], { stdio: 'ignore', env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } });
    for (const py of candidates) if (works(py)) return py;
  }
  return null;
}

interface PeerResult {
  enrolled: number;
  fingers: number;
  genuine: number;
  falseNonMatches: number;
  errors: number;
  impostor: number;
  falseMatches: number;
}

/** NBIS on one set, through bench/nbis-libfprint.py (one process: libfprint's heat model limits a device's session). */
async function runPeer(python: string, captures: Capture[]): Promise<PeerResult> {
  const dir = await mkdtemp(join(os.tmpdir(), 'bk-nbis-'));
  try {
    const fingers: Record<string, string[]> = {};
    for (const [k, c] of captures.entries()) {
      const g = await decodeGray(await readFile(c.path));
      const frame = join(dir, `${k}.frame`);
      const header = new Int32Array([g.width, g.height]);
      await writeFile(frame, Buffer.concat([Buffer.from(header.buffer), Buffer.from(g.data)]));
      (fingers[c.finger] ??= []).push(frame);
    }
    await writeFile(join(dir, 'job.json'), JSON.stringify({ fingers }));
    const env = { ...process.env, FP_DEVICE_EMULATION: '1', FP_VIRTUAL_IMAGE: join(dir, 'sock') };
    const { stdout } = await run(python, [join(import.meta.dirname, 'nbis-libfprint.py'), join(dir, 'job.json')], { env, maxBuffer: 1 << 24, timeout: 600_000 });
    const out = JSON.parse(stdout.trim().split('\n').pop()!) as { fingers: Array<{ finger: string; enrolled: boolean; genuine: string[]; impostor: string[] }> };
    const r: PeerResult = { enrolled: 0, fingers: out.fingers.length, genuine: 0, falseNonMatches: 0, errors: 0, impostor: 0, falseMatches: 0 };
    for (const f of out.fingers) {
      const attempts = fingers[f.finger]!.length - 1;
      r.genuine += attempts;
      if (!f.enrolled) {
        r.falseNonMatches += attempts; // a finger that cannot enroll is refused every time
        continue;
      }
      r.enrolled++;
      r.falseNonMatches += f.genuine.filter((d) => d !== 'match').length;
      r.errors += f.genuine.filter((d) => d === 'error').length;
      r.impostor += f.impostor.length;
      r.falseMatches += f.impostor.filter((d) => d === 'match').length;
    }
    return r;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

function byNumber(a: string, b: string): number {
  return a.localeCompare(b, undefined, { numeric: true });
}

async function main(): Promise<void> {
  const data = arg('--data');
  if (!data) throw new Error('usage: fingerprint-real.ts --data FOLDER (a folder of sets: FOLDER/SET/{finger}_{impression}.png)');
  const root = resolve(data);
  const sets: string[] = [];
  for (const e of (await readdir(root, { withFileTypes: true })).sort((a, b) => byNumber(a.name, b.name))) if (e.isDirectory()) sets.push(e.name);
  const only = arg('--sets')?.split(',');
  if (only) sets.splice(0, sets.length, ...sets.filter((s) => only.includes(s)));
  if (!sets.length) throw new Error(`${root} holds no set folders${only ? ` named ${only.join(', ')}` : ''}`);
  const tuned = new Set(arg('--tuned')?.split(',') ?? TUNED_SETS);
  const calibrated = new Set(arg('--calibrated')?.split(',') ?? CALIBRATION_SETS);
  const role = (s: string) => (tuned.has(s) || calibrated.has(s) ? [tuned.has(s) ? 'tuned' : '', calibrated.has(s) ? 'calibrated' : ''].filter(Boolean).join(', ') : 'held out');
  const python = process.argv.includes('--no-peer') ? null : findPeerPython();
  const engine = await FingerprintEngine.create();
  const threshold = FINGERPRINT_DEFAULT_THRESHOLD;
  const perSet = [];
  const pools: Record<'all' | 'calibration' | 'heldOut', Scores> = {
    all: { genuine: [], impostor: [], genuineAccepted: [] },
    calibration: { genuine: [], impostor: [], genuineAccepted: [] },
    heldOut: { genuine: [], impostor: [], genuineAccepted: [] },
  };
  const peerPool = { ours: { genuine: 0, fnm: 0, impostor: 0, fm: 0 }, nbis: { genuine: 0, fnm: 0, impostor: 0, fm: 0 } };
  const timesBySize: Record<string, number[]> = {};
  try {
    for (const set of sets) {
      const ds = await loadDataset(join(root, set));
      const captures: Capture[] = [];
      for (const item of ds.items) {
        const bytes = await readFile(item.path);
        const t0 = performance.now();
        try {
          const x = await engine.extract(bytes);
          const ms = performance.now() - t0;
          const img = x.info['image'] as { width: number; height: number };
          captures.push({ finger: item.identity, template: x.template, quality: x.quality.score, minutiae: x.info['minutiae'] as number, ms, ...img, path: item.path });
          (timesBySize[`${img.width}x${img.height}`] ??= []).push(ms);
        } catch {
          captures.push({ finger: item.identity, template: null, quality: 0, minutiae: 0, ms: performance.now() - t0, width: 0, height: 0, path: item.path });
        }
      }
      const accepted = (c: Capture) => c.template !== null && c.quality >= RETRY_BELOW;
      const s: Scores = { genuine: [], impostor: [], genuineAccepted: [] };
      for (let i = 0; i < captures.length; i++) {
        for (let j = i + 1; j < captures.length; j++) {
          const a = captures[i]!, b = captures[j]!;
          const score = a.template && b.template ? engine.compare(a.template, b.template).score : 0;
          if (a.finger === b.finger) {
            s.genuine.push(score);
            if (accepted(a) && accepted(b)) s.genuineAccepted.push(score);
          } else s.impostor.push(score);
        }
      }
      // The peer protocol, for us: enroll the first impression, verify the others and the other fingers' firsts.
      const byFinger = new Map<string, Capture[]>();
      for (const c of captures) byFinger.set(c.finger, [...(byFinger.get(c.finger) ?? []), c]);
      const ours = { genuine: 0, fnm: 0, impostor: 0, fm: 0 };
      const fingers = [...byFinger.keys()].sort(byNumber);
      const decide = (a: Capture, b: Capture) => Boolean(a.template && b.template && engine.compare(a.template, b.template).score >= threshold);
      for (const f of fingers) {
        const [first, ...rest] = byFinger.get(f)!;
        for (const c of rest) (ours.genuine++, (ours.fnm += decide(first!, c) ? 0 : 1));
        for (const g of fingers) if (g !== f) (ours.impostor++, (ours.fm += decide(first!, byFinger.get(g)![0]!) ? 1 : 0));
      }
      const peer = python ? await runPeer(python, fingers.flatMap((f) => byFinger.get(f)!)).catch((e: Error) => ({ error: e.message.split('\n')[0]! })) : null;
      for (const k of ['genuine', 'fnm', 'impostor', 'fm'] as const) peerPool.ours[k] += ours[k];
      if (peer && !('error' in peer)) {
        peerPool.nbis.genuine += peer.genuine;
        peerPool.nbis.fnm += peer.falseNonMatches;
        peerPool.nbis.impostor += peer.impostor;
        peerPool.nbis.fm += peer.falseMatches;
      }
      for (const pool of [pools.all, calibrated.has(set) ? pools.calibration : tuned.has(set) ? null : pools.heldOut]) {
        if (!pool) continue;
        pool.genuine.push(...s.genuine);
        pool.impostor.push(...s.impostor);
        pool.genuineAccepted.push(...s.genuineAccepted);
      }
      perSet.push({
        set,
        role: role(set),
        images: captures.length,
        fingers: fingers.length,
        size: `${captures[0]?.width}x${captures[0]?.height}`,
        failures: captures.filter((c) => !c.template).length,
        retakes: captures.filter((c) => !accepted(c)).length,
        minutiaeMedian: median(captures.map((c) => c.minutiae)),
        extractMsMedian: +median(captures.map((c) => c.ms)).toFixed(1),
        ...rates(s, threshold),
        peerProtocol: { ours, nbis: peer },
      });
      process.stderr.write(`${set}: done\n`);
    }
  } finally {
    await engine.close();
  }
  const pooled = {
    all: rates(pools.all, threshold),
    calibration: pools.calibration.genuine.length ? rates(pools.calibration, threshold) : null,
    heldOut: pools.heldOut.genuine.length ? rates(pools.heldOut, threshold) : null,
  };
  const result = {
    bench: 'fingerprint-real',
    data: root,
    threshold,
    tuned: [...tuned],
    calibrated: [...calibrated],
    peer: python ? 'NBIS (mindtct + bozorth3) via libfprint virtual_image, bozorth3 threshold 40' : 'unavailable (needs libfprint-2-2, gir1.2-fprint-2.0, python3-gi)',
    sets: perSet,
    pooled,
    peerPooled: peerPool,
    extractMsMedianBySize: Object.fromEntries(Object.entries(timesBySize).map(([k, v]) => [k, +median(v).toFixed(1)])),
    machine: `${os.cpus()[0]?.model ?? 'cpu'}, ${os.cpus().length} cores, Node ${process.version}`,
  };
  if (!process.argv.includes('--json')) process.stdout.write(markdown(result) + '\n');
  process.stdout.write(JSON.stringify(result) + '\n');
}

type Result = {
  threshold: number;
  sets: Array<Record<string, any>>;
  pooled: Record<string, ReturnType<typeof rates> | null>;
  peerPooled: Record<'ours' | 'nbis', { genuine: number; fnm: number; impostor: number; fm: number }>;
  peer: string;
};

/** The tables BENCHMARKS.md records (also what `npm run bench -- --only=fingerprint-real` appends). */
function markdown(r: Result): string {
  const row = (name: string, role: string, x: ReturnType<typeof rates>) =>
    `| ${name} | ${role} | ${x.genuine} / ${x.impostor} | ${pct(x.eer)} | ${pct(x.fnmrAt1)} | ${pct(x.fnmrAt01)} | ${pct(x.atDefault.fmr, 3)} (${x.atDefault.falseMatches}) | ${pct(x.atDefault.fnmr)} (${x.atDefault.falseNonMatches}) | ${pct(x.accepted.fnmr)} (${x.accepted.genuine} pairs) |`;
  const lines = [
    `Default threshold ${r.threshold}. Pairs: genuine / impostor (all cross-finger pairs within a set).`,
    '',
    '| set | role | pairs | EER | FNMR at FMR 1% | FNMR at FMR 0.1% | FMR at default | FNMR at default | FNMR at default, accepted captures only |',
    '| --- | --- | --- | --- | --- | --- | --- | --- | --- |',
    ...r.sets.map((s) => row(`${s['set']} (${s['size']})`, s['role'], s as unknown as ReturnType<typeof rates>)),
    ...(['all', 'calibration', 'heldOut'] as const).filter((k) => r.pooled[k]).map((k) => row(`**pooled: ${k === 'all' ? 'all sets' : k === 'calibration' ? 'calibration sets' : 'held-out sets'}**`, '', r.pooled[k]!)),
    '',
    `Peer protocol (enroll the first impression; verify the 7 others, and the other fingers' first impressions). Peer: ${r.peer}.`,
    '',
    '| set | role | ours: FNMR | ours: false matches | NBIS: FNMR | NBIS: false matches | NBIS: enrolled |',
    '| --- | --- | --- | --- | --- | --- | --- |',
    ...r.sets.map((s) => {
      const o = s['peerProtocol'].ours;
      const n = s['peerProtocol'].nbis;
      const nb = !n ? '| n/a | n/a | n/a |' : 'error' in n ? `| error: ${n.error} | | |` : `| ${pct(n.falseNonMatches / n.genuine, 1)} (${n.falseNonMatches}/${n.genuine}) | ${n.falseMatches}/${n.impostor} | ${n.enrolled}/${n.fingers} |`;
      return `| ${s['set']} | ${s['role']} | ${pct(o.fnm / o.genuine, 1)} (${o.fnm}/${o.genuine}) | ${o.fm}/${o.impostor} ${nb}`;
    }),
    `| **all sets** | | ${pct(r.peerPooled.ours.fnm / r.peerPooled.ours.genuine, 1)} (${r.peerPooled.ours.fnm}/${r.peerPooled.ours.genuine}) | ${r.peerPooled.ours.fm}/${r.peerPooled.ours.impostor} | ${r.peerPooled.nbis.genuine ? `${pct(r.peerPooled.nbis.fnm / r.peerPooled.nbis.genuine, 1)} (${r.peerPooled.nbis.fnm}/${r.peerPooled.nbis.genuine})` : 'n/a'} | ${r.peerPooled.nbis.genuine ? `${r.peerPooled.nbis.fm}/${r.peerPooled.nbis.impostor}` : 'n/a'} | |`,
    '',
    `| set | minutiae (median) | captures to retake (quality < ${RETRY_BELOW}) | extraction failures | extraction median, one pass per image with decoding (speed: bench/fingerprint-extract.ts) |`,
    '| --- | --- | --- | --- | --- |',
    ...r.sets.map((s) => `| ${s['set']} | ${s['minutiaeMedian']} | ${s['retakes']} of ${s['images']} | ${s['failures']} | ${s['extractMsMedian']} ms |`),
  ];
  return lines.join('\n');
}

await main();
