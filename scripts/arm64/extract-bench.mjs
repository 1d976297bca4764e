#!/usr/bin/env node
// Extraction timings and templates from one release tree's compiled code, so the same images can be run natively
// and under arm64 emulation in the same check (scripts/arm64-check.sh) and their templates compared.
//
//   node extract-bench.mjs extract RELEASE_DIR RUNS face:IMAGE fingerprint:IMAGE ...   -> JSON on stdout
//   node extract-bench.mjs compare RELEASE_DIR A.json B.json                           -> JSON on stdout
//
// extract: per image, one warm-up, then RUNS timed extractions in this process (model load timed apart).
// compare: per image, whether the templates are byte-identical and, for faces, the embeddings' largest
// difference against the face parity bound (1e-3 of the largest component, as test/face-parity.test.ts) and the
// matcher's score between the two.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

const [mode, release, ...rest] = process.argv.slice(2);
const load = (rel) => import(pathToFileURL(join(release, 'dist', rel)).href);
const { createEngine } = await load('models/engines.js');

if (mode === 'extract') {
  const runs = Number(rest[0]);
  const out = { arch: process.arch, node: process.version, runs, images: [] };
  const engines = new Map();
  for (const item of rest.slice(1)) {
    const [modality, path] = [item.slice(0, item.indexOf(':')), item.slice(item.indexOf(':') + 1)];
    let loadMs = 0;
    if (!engines.has(modality)) {
      const t0 = performance.now();
      engines.set(modality, await createEngine(modality));
      loadMs = performance.now() - t0;
    }
    const engine = engines.get(modality);
    const image = readFileSync(path);
    const first = await engine.extract(image);
    const times = [];
    for (let i = 0; i < runs; i++) {
      const t0 = performance.now();
      await engine.extract(image);
      times.push(performance.now() - t0);
    }
    times.sort((a, b) => a - b);
    out.images.push({ modality, path, loadMs, medianMs: times[Math.floor(times.length / 2)], minMs: times[0], template: Buffer.from(first.template).toString('base64') });
  }
  for (const e of engines.values()) await e.close();
  process.stdout.write(JSON.stringify(out) + '\n');
} else if (mode === 'compare') {
  const [a, b] = rest.map((f) => JSON.parse(readFileSync(f, 'utf8')));
  const { decodeFaceTemplate } = await load('models/face/template.js');
  const engines = new Map();
  const results = [];
  for (let i = 0; i < a.images.length; i++) {
    const x = a.images[i];
    const y = b.images[i];
    const ta = Buffer.from(x.template, 'base64');
    const tb = Buffer.from(y.template, 'base64');
    if (!engines.has(x.modality)) engines.set(x.modality, await createEngine(x.modality));
    const cmp = engines.get(x.modality).compare(ta, tb);
    const r = { modality: x.modality, path: x.path, identical: ta.equals(tb), score: cmp.score, native: cmp.native, decision: cmp.decision };
    if (x.modality === 'face') {
      const ea = decodeFaceTemplate(ta).embedding;
      const eb = decodeFaceTemplate(tb).embedding;
      let maxDiff = 0;
      let scale = 0;
      for (let k = 0; k < ea.length; k++) {
        maxDiff = Math.max(maxDiff, Math.abs(ea[k] - eb[k]));
        scale = Math.max(scale, Math.abs(ea[k]));
      }
      Object.assign(r, { maxDiff, bound: 1e-3 * scale, withinBound: maxDiff <= 1e-3 * scale });
    } else {
      r.withinBound = r.identical;
    }
    results.push(r);
  }
  for (const e of engines.values()) await e.close();
  process.stdout.write(JSON.stringify({ results }) + '\n');
} else {
  console.error('usage: extract-bench.mjs extract RELEASE RUNS modality:IMAGE... | compare RELEASE A.json B.json');
  process.exit(2);
}
