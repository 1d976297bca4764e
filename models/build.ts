/**
 * `npm run models`: rebuilds every ONNX file from its source and rewrites models/manifest.json.
 * Reproducible: the same sources give the same bytes (checked by test/models-build.test.ts).
 * With --check it writes nothing and fails if any file on disk differs from what it would build. With --install
 * (npm's postinstall: the .onnx files are not in git) it writes the model files only, and fails if what it built
 * is not what the committed manifest pins.
 */
import { createHash } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { convertFaceNet, FACE_NETS, faceApiDir, faceApiVersion, SOURCE_PACKAGE } from './face/convert.ts';
import { buildFingerprintGraphs, FINGERPRINT_GRAPHS } from './fingerprint/build.ts';
import { buildIrisGraphs, IRIS_GRAPHS } from './iris/build.ts';
import { PACKAGE_ROOT } from '../protocol/runtime.ts';

export const MODELS_DIR = join(PACKAGE_ROOT, 'models');
export const MANIFEST_PATH = join(MODELS_DIR, 'manifest.json');

export interface ManifestEntry {
  file: string;
  sha256: string;
  bytes: number;
  modality: 'face' | 'fingerprint' | 'iris';
  source: { package: string; version: string; files: Array<{ path: string; sha256: string }> };
  inputs: Record<string, Array<number | string>>;
  outputs: Record<string, Array<number | string>>;
  description: string;
}

export interface Manifest {
  format: 'biokiosk-models/1';
  models: Record<string, ManifestEntry>;
}

const sha256 = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

/** A manifest entry for model bytes written to `file`, with the spec's interface and where the bytes came from. */
function manifestEntry(
  spec: Pick<ManifestEntry, 'inputs' | 'outputs' | 'description'>,
  file: string,
  bytes: Uint8Array,
  modality: ManifestEntry['modality'],
  source: ManifestEntry['source'],
): ManifestEntry {
  return { file, sha256: sha256(bytes), bytes: bytes.length, modality, source, inputs: spec.inputs, outputs: spec.outputs, description: spec.description };
}

export async function buildAll(): Promise<{ manifest: Manifest; files: Map<string, Uint8Array> }> {
  const models: Record<string, ManifestEntry> = {};
  const files = new Map<string, Uint8Array>();
  for (const spec of FACE_NETS) {
    const bytes = await convertFaceNet(spec);
    const file = `face/${spec.name}.onnx`;
    const manifestJson = await readFile(join(faceApiDir(), 'model', spec.sourceManifest));
    const shards = (JSON.parse(manifestJson.toString()) as Array<{ paths: string[] }>).flatMap((g) => g.paths);
    const sourceFiles = [{ path: `model/${spec.sourceManifest}`, sha256: sha256(manifestJson) }];
    for (const s of shards) sourceFiles.push({ path: `model/${s}`, sha256: sha256(await readFile(join(faceApiDir(), 'model', s))) });
    files.set(file, bytes);
    models[spec.name] = manifestEntry(spec, file, bytes, 'face', { package: SOURCE_PACKAGE, version: faceApiVersion(), files: sourceFiles });
  }
  await addFingerprintGraphs(models, files);
  await addIrisGraphs(models, files);
  return { manifest: { format: 'biokiosk-models/1', models }, files };
}

/** The fingerprint extractor's graphs: built from code, so their source is models/fingerprint/build.ts itself. */
async function addFingerprintGraphs(models: Record<string, ManifestEntry>, files: Map<string, Uint8Array>): Promise<void> {
  const script = await readFile(join(MODELS_DIR, 'fingerprint', 'build.ts'));
  const pkg = JSON.parse(await readFile(join(MODELS_DIR, '..', 'package.json'), 'utf8')) as { name: string; version: string };
  const built = buildFingerprintGraphs();
  for (const spec of FINGERPRINT_GRAPHS) {
    const bytes = built.get(spec.name)!;
    const file = `fingerprint/${spec.name}.onnx`;
    files.set(file, bytes);
    models[spec.name] = manifestEntry(spec, file, bytes, 'fingerprint', {
      package: pkg.name,
      version: pkg.version,
      files: [{ path: 'models/fingerprint/build.ts', sha256: sha256(script) }],
    });
  }
}

/** The iris code's filter graph: built from code, so its source is models/iris/build.ts (and the parameters it reads). */
async function addIrisGraphs(models: Record<string, ManifestEntry>, files: Map<string, Uint8Array>): Promise<void> {
  const sources = ['models/iris/build.ts', 'models/iris/params.ts'];
  const pkg = JSON.parse(await readFile(join(MODELS_DIR, '..', 'package.json'), 'utf8')) as { name: string; version: string };
  const sourceFiles = await Promise.all(sources.map(async (path) => ({ path, sha256: sha256(await readFile(join(MODELS_DIR, '..', path))) })));
  const built = buildIrisGraphs();
  for (const spec of IRIS_GRAPHS) {
    const bytes = built.get(spec.name)!;
    const file = `iris/${spec.name}.onnx`;
    files.set(file, bytes);
    models[spec.name] = manifestEntry(spec, file, bytes, 'iris', { package: pkg.name, version: pkg.version, files: sourceFiles });
  }
}

async function main(): Promise<void> {
  const check = process.argv.includes('--check');
  const install = process.argv.includes('--install');
  const { manifest, files } = await buildAll();
  const manifestText = JSON.stringify(manifest, null, 2) + '\n';
  if (install && (await readFile(MANIFEST_PATH, 'utf8').catch(() => '')) !== manifestText) {
    console.error(`models: the built models differ from ${relative(process.cwd(), MANIFEST_PATH)} (a different @vladmandic/face-api, or changed sources?); run \`npm run models\` and review the change`);
    process.exit(1);
  }
  let differences = 0;
  for (const [file, bytes] of files) {
    const path = join(MODELS_DIR, file);
    if (check) {
      const onDisk = await readFile(path).catch(() => null);
      const same = onDisk !== null && sha256(onDisk) === sha256(bytes);
      if (!same) differences++;
      console.log(`${same ? 'same' : 'DIFFERS'}  ${relative(process.cwd(), path)}  ${sha256(bytes)}`);
    } else {
      await writeFile(path, bytes);
      console.log(`wrote ${relative(process.cwd(), path)}  ${bytes.length} bytes  sha256 ${sha256(bytes)}`);
    }
  }
  if (install) return;
  if (check) {
    const onDisk = await readFile(MANIFEST_PATH, 'utf8').catch(() => '');
    if (onDisk !== manifestText) differences++;
    console.log(`${onDisk === manifestText ? 'same' : 'DIFFERS'}  ${relative(process.cwd(), MANIFEST_PATH)}`);
    if (differences > 0) process.exit(1);
  } else {
    await writeFile(MANIFEST_PATH, manifestText);
    console.log(`wrote ${relative(process.cwd(), MANIFEST_PATH)}`);
  }
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  await main();
}
