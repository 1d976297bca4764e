#!/usr/bin/env node
// The arm64 check's report (scripts/arm64-check.sh): its steps, and native against emulated extraction, as a
// BENCHMARKS.md section.
//   node report.mjs DIR RESULTS.tsv X64.json ARM64.json PARITY.json BINFMT TOTAL_SECONDS BUNDLE RUNS
// (DIR holds each step's output, step-NAME.out, summarised in the table.)
import { readFileSync } from 'node:fs';
import os from 'node:os';

const [dir, resultsPath, x64Path, armPath, parityPath, binfmt, total, bundle, runs] = process.argv.slice(2);
const json = (p) => {
  try {
    return JSON.parse(readFileSync(p, 'utf8').trim().split('\n').pop());
  } catch {
    return null;
  }
};
const steps = readFileSync(resultsPath, 'utf8').trim().split('\n').map((l) => l.split('\t'));

/** What a step showed, in a few words (its JSON output read back), or its raw tail. */
function summary(step, fallback) {
  const o = json(`${dir}/step-${step}.out`);
  const text = () => {
    try {
      return readFileSync(`${dir}/step-${step}.out`, 'utf8');
    } catch {
      return '';
    }
  };
  switch (step) {
    case 'help':
      return text().split('\n')[0];
    case 'install':
      return text().trim().split('\n').join('; ');
    case 'face':
      return o && `${o.faceCount} face, quality ${o.quality?.score}, template ${Buffer.from(o.template, 'base64').length} bytes (${o.model?.name})`;
    case 'fingerprint':
      return o && `${o.minutiae} minutiae, quality ${o.quality?.score}, template ${Buffer.from(o.template, 'base64').length} bytes`;
    case 'tpm':
      return o && `key ${o.kid} in the TPM (${o.description}); Certify evidence signed (${Buffer.from(o.certify.signature, 'base64url').length}-byte signature)`;
    case 'outbox':
      return o && `${o.enqueued} attestations enqueued (fsync'd, ${o.enqueueMsPerEntry.toFixed(1)} ms each), ${o.keptAfterReopen} after reopening, ${o.leftAfterAck} after acknowledgement`;
    case 'demo':
    case 'demo-tpm':
      return o && `${o.attempts.map((a) => `${a.name} ${a.decision} (${(a.latencyMs.total / 1000).toFixed(1)} s)`).join(', ')}; ${o.camera}; ${o.keyStore.split(',')[0]}`;
    case 'bench-x64':
    case 'bench-arm64':
      return o && `${o.images.length} images on ${o.arch}, Node ${o.node} (below)`;
    case 'parity':
      return o && `${o.results.filter((r) => r.withinBound).length} of ${o.results.length} templates identical or within the bound (below)`;
    default:
      return fallback.slice(0, 120);
  }
}
const x64 = json(x64Path);
const arm = json(armPath);
const parity = json(parityPath);
const date = new Date().toISOString().slice(0, 10);
const cpu = os.cpus()[0]?.model ?? 'unknown cpu';
const f = (v) => (typeof v === 'number' ? v.toFixed(1) : '-');
const name = (p) => p.split('/').pop();

let out = `
## ${date}: the kiosk on arm64 binaries, under emulation (issue 17)

- Machine: ${cpu}, ${os.cpus().length} cores, ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB, ${os.platform()} ${os.release()}; arm64 under qemu-aarch64-static (Debian qemu-user-static), ${binfmt === '1' ? 'binfmt_misc registered (child processes run too)' : 'no binfmt_misc: each step its own emulated process'}
- Command: \`npm run check:arm64\` (scripts/arm64-check.sh), ${total} s in all; bundle ${bundle}; root file system: Debian bookworm arm64 minbase + ffmpeg, libusb-1.0-0, ca-certificates (as Dockerfile.arm64)

| step | result | seconds | detail |
| --- | --- | --- | --- |
${steps.map(([s, r, t, d]) => `| ${s} | ${r === 'ok' ? 'ok' : '**FAIL**'} | ${t} | ${String((r === 'ok' && summary(s, d ?? '')) || d || '').replace(/\|/g, '/').slice(0, 220)} |`).join('\n')}
`;
if (x64 && arm && parity) {
  out += `
Extraction in one process per architecture, the same image files, ${runs} timed runs after one warm-up (medians); the
ratio is emulation's cost on this machine and says nothing about a real arm64 board's speed. Templates compared
(face: largest embedding difference against the parity bound, 1e-3 of the largest component; fingerprint:
byte-identical records):

| image | x64 native | arm64 emulated | ratio | templates |
| --- | --- | --- | --- | --- |
${x64.images
  .map((a, i) => {
    const b = arm.images[i];
    const p = parity.results[i];
    const same = p.identical ? 'byte-identical' : p.modality === 'face' ? `max diff ${p.maxDiff.toExponential(2)} (bound ${p.bound.toExponential(2)}): ${p.withinBound ? 'within' : '**outside**'}; score ${p.score.toFixed(6)}` : `**differ** (score ${p.score.toFixed(4)})`;
    return `| ${a.modality} ${name(a.path)} | ${f(a.medianMs)} ms | ${f(b.medianMs)} ms | ${(b.medianMs / a.medianMs).toFixed(1)}x | ${same} |`;
  })
  .join('\n')}

Model load: face ${f(x64.images.find((i) => i.modality === 'face')?.loadMs)} ms native, ${f(arm.images.find((i) => i.modality === 'face')?.loadMs)} ms emulated.
`;
}
process.stdout.write(out);
