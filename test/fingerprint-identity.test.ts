/**
 * The fingerprint extractor's identity (the sha256 a verifier allow-lists) covers its graphs, its parameters and its
 * code: a changed parameter or changed code must never produce templates under an old identity.
 */
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { fingerprintExtractorIdentity, fingerprintExtractorSettings } from '../models/fingerprint/engine.ts';
import { PARAMS } from '../models/fingerprint/extract/params.ts';
import { EXTRACTOR_CODE_VERSION, EXTRACTOR_SOURCE_DIGEST, EXTRACTOR_SOURCES } from '../models/fingerprint/extract/version.ts';

const ROOT = join(import.meta.dirname, '..');
const graphs = { fp_orientation: 'a'.repeat(64), fp_gabor: 'b'.repeat(64) };

describe('fingerprint extractor identity', () => {
  it('pins the digest of the extractor sources to the code version (bump the version when they change)', async () => {
    const h = createHash('sha256');
    for (const p of EXTRACTOR_SOURCES) h.update(`${p}\n`).update(await readFile(join(ROOT, p)));
    const digest = h.digest('hex');
    const hint = `the extractor's code changed: bump EXTRACTOR_CODE_VERSION (now ${EXTRACTOR_CODE_VERSION}) and set EXTRACTOR_SOURCE_DIGEST to '${digest}' in models/fingerprint/extract/version.ts`;
    expect(EXTRACTOR_SOURCE_DIGEST, hint).toBe(digest);
  });

  it('lists every source file of the extractor', async () => {
    const { readdir } = await import('node:fs/promises');
    const files = (await readdir(join(ROOT, 'models/fingerprint/extract'))).filter((f) => f.endsWith('.ts') && f !== 'version.ts' && f !== 'test-pattern.ts');
    for (const f of files) expect(EXTRACTOR_SOURCES).toContain(`models/fingerprint/extract/${f}`);
  });

  it('changes with any graph, any parameter and the code version', () => {
    const base = fingerprintExtractorIdentity(graphs).sha256;
    expect(base).toMatch(/^[0-9a-f]{64}$/);
    expect(fingerprintExtractorIdentity({ ...graphs }).sha256).toBe(base);
    expect(fingerprintExtractorIdentity({ ...graphs, fp_gabor: 'c'.repeat(64) }).sha256).not.toBe(base);
    // The settings string is part of the hash and holds every parameter by name and value.
    const settings = JSON.parse(fingerprintExtractorSettings());
    expect(settings.params).toEqual({ ...PARAMS });
    expect(settings.code).toEqual({ version: EXTRACTOR_CODE_VERSION, sources: EXTRACTOR_SOURCE_DIGEST });
    expect(Object.keys(settings).sort()).toEqual(['code', 'gabor', 'orientation', 'params', 'retryBelow', 'workingDpi']);
  });

  it('gives a different identity when a parameter changes (the module re-evaluated with another value)', async () => {
    const { vi } = await import('vitest');
    vi.resetModules();
    vi.doMock('../models/fingerprint/extract/params.ts', async (orig) => {
      const real = await orig<typeof import('../models/fingerprint/extract/params.ts')>();
      return { ...real, PARAMS: Object.freeze({ ...real.PARAMS, borderPeriods: real.PARAMS.borderPeriods + 0.1 }) };
    });
    const changed = await import('../models/fingerprint/engine.ts');
    expect(changed.fingerprintExtractorIdentity(graphs).sha256).not.toBe(fingerprintExtractorIdentity(graphs).sha256);
    vi.doUnmock('../models/fingerprint/extract/params.ts');
    vi.resetModules();
  });
});
