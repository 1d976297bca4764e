/**
 * ECDSA P-256 signing through our TPM client on a fresh swtpm, side by side with `tpm2_sign` (tpm2-tools) on the
 * same persistent key: p50/p99 per signature for ours (>= 500 signatures), per process invocation for tpm2_sign,
 * and the ratio. Needs swtpm, swtpm-tools, tpm2-tools. Prints progress on stderr and one JSON line on stdout.
 *
 *   npx tsx bench/tpm-sign.ts [--n 500] [--tool-n 100]
 */
import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { promisify } from 'node:util';
import { TpmKeyStore } from '../device/keystore/tpm.ts';
import { Swtpm } from '../test/helpers/swtpm.ts';

const exec = promisify(execFile);

function arg(name: string, def: number): number {
  const i = process.argv.indexOf(name);
  const v = i >= 0 ? Number(process.argv[i + 1]) : def;
  if (!Number.isInteger(v) || v < 1) throw new Error(`${name} needs a positive integer`);
  return v;
}

function pct(sorted: number[], p: number): number {
  const i = Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1);
  return Math.round(sorted[Math.max(0, i)]! * 1000) / 1000;
}

function summary(ms: number[]): { n: number; p50_ms: number; p99_ms: number; mean_ms: number } {
  const s = [...ms].sort((a, b) => a - b);
  return { n: s.length, p50_ms: pct(s, 50), p99_ms: pct(s, 99), mean_ms: Math.round((s.reduce((a, b) => a + b, 0) / s.length) * 1000) / 1000 };
}

const N = Math.max(500, arg('--n', 500));
const TOOL_N = arg('--tool-n', 100);
const HANDLE = 0x81010002;

const tpm = await Swtpm.start();
const dir = await mkdtemp(join(tmpdir(), 'bk-tpm-bench-'));
try {
  const ks = await TpmKeyStore.open({ tpm: tpm.url, handle: HANDLE });
  const digests = Array.from({ length: N }, () => createHash('sha256').update(randomBytes(32)).digest());
  for (let i = 0; i < 20; i++) await ks.sign(digests[i]!); // warm-up
  const ours: number[] = [];
  for (const d of digests) {
    const t0 = performance.now();
    await ks.sign(d);
    ours.push(performance.now() - t0);
  }
  await ks.close(); // swtpm serves one connection at a time: free it for tpm2_sign
  process.stderr.write(`ours: ${N} signatures done\n`);

  const digestFile = join(dir, 'digest.bin');
  await writeFile(digestFile, digests[0]!);
  const env = { ...process.env, TPM2TOOLS_TCTI: tpm.tcti };
  const tool: number[] = [];
  for (let i = 0; i < TOOL_N + 3; i++) {
    const t0 = performance.now();
    await exec('tpm2_sign', ['-c', `0x${HANDLE.toString(16)}`, '-g', 'sha256', '-s', 'ecdsa', '-d', '-f', 'plain', '-o', join(dir, 'sig.bin'), digestFile], { env });
    if (i >= 3) tool.push(performance.now() - t0); // first runs warm the page cache
  }
  process.stderr.write(`tpm2_sign: ${TOOL_N} invocations done\n`);

  const o = summary(ours);
  const t = summary(tool);
  console.log(
    JSON.stringify({
      bench: 'tpm-sign',
      tpm: 'swtpm (tcp, loopback)',
      ours: o,
      tpm2_sign_per_invocation: t,
      ratio_p50: Math.round((t.p50_ms / o.p50_ms) * 10) / 10,
      ratio_p99: Math.round((t.p99_ms / o.p99_ms) * 10) / 10,
      note: 'ratio = tpm2_sign process time / our per-signature time (our client keeps its connection open; tpm2_sign starts a process, loads TCTI, connects per signature)',
    }),
  );
} finally {
  await tpm.stop();
  await rm(dir, { recursive: true, force: true });
}
