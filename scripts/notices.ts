/**
 * `npm run notices`: writes NOTICES.md, the third-party notices for what the package carries, generated from the
 * installed production dependency tree (package.json's dependencies and the optional ones that are installed,
 * followed through every package's own, resolved the way Node resolves them) and each package's licence files,
 * plus the face models, which come from weights rather than from code. Nothing in it is kept by hand but the
 * models' paragraph below. `--check` writes nothing and fails if NOTICES.md is not what it would write;
 * `--root DIR` reads another tree (a release bundle's), `--out FILE` writes elsewhere, `--node DIR` adds the
 * Node.js runtime found in DIR (a bundle that carries its own node).
 */
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';

interface PackageJson {
  name: string;
  version: string;
  license?: string | { type?: string };
  licenses?: Array<{ type?: string }>;
  dependencies?: Record<string, string>;
  optionalDependencies?: Record<string, string>;
  repository?: string | { url?: string };
  homepage?: string;
}

export interface ThirdParty {
  name: string;
  version: string;
  license: string;
  homepage: string | null;
  /** Licence and notice texts, by file name (or a README section when the package has no such file). */
  texts: Array<{ file: string; text: string }>;
}

const LICENSE_FILE = /^(licen[cs]e|copying|notice|third[-_]?party[-_]?notices)(\.|$|-)/i;

function readJson(path: string): PackageJson {
  return JSON.parse(readFileSync(path, 'utf8')) as PackageJson;
}

/** The folder Node would load `name` from when `from` (a package folder) imports it, or null. */
function resolvePackage(name: string, from: string, root: string): string | null {
  for (let dir = from; ; dir = dirname(dir)) {
    const candidate = join(dir, 'node_modules', name);
    if (existsSync(join(candidate, 'package.json'))) return candidate;
    if (dir === root || dirname(dir) === dir) return null;
  }
}

function licenseOf(p: PackageJson): string {
  if (typeof p.license === 'string') return p.license;
  if (p.license && typeof p.license.type === 'string') return p.license.type;
  if (Array.isArray(p.licenses)) return p.licenses.map((l) => l.type ?? '?').join(' OR ');
  return 'not stated';
}

function homepageOf(p: PackageJson): string | null {
  const repo = typeof p.repository === 'string' ? p.repository : p.repository?.url;
  return p.homepage ?? repo?.replace(/^git\+/, '').replace(/\.git$/, '') ?? null;
}

/** A README's section about licensing (heading to the next heading of the same or a higher level). */
function readmeLicenseSection(dir: string): { file: string; text: string } | null {
  const readme = readdirSync(dir).find((f) => /^readme(\.md)?$/i.test(f));
  if (!readme) return null;
  const lines = readFileSync(join(dir, readme), 'utf8').split('\n');
  const start = lines.findIndex((l) => /^#+\s.*licen[cs]/i.test(l));
  if (start < 0) return null;
  const level = /^#+/.exec(lines[start]!)![0].length;
  let end = lines.findIndex((l, i) => i > start && /^#+\s/.test(l) && /^#+/.exec(l)![0].length <= level);
  if (end < 0) end = lines.length;
  return { file: `${readme} (its licensing section)`, text: lines.slice(start, end).join('\n').trim() };
}

function textsOf(dir: string): ThirdParty['texts'] {
  const files = readdirSync(dir, { withFileTypes: true }).filter((e) => e.isFile() && LICENSE_FILE.test(e.name)).map((e) => e.name).sort();
  const texts = files.map((file) => ({ file, text: readFileSync(join(dir, file), 'utf8').replace(/\r\n/g, '\n').trim() }));
  if (texts.length > 0) return texts;
  const section = readmeLicenseSection(dir);
  return section ? [section] : [];
}

/** Every package of the production tree under `root`, once per name and version, sorted. */
export function productionTree(root: string): ThirdParty[] {
  const rootPkg = readJson(join(root, 'package.json'));
  const seen = new Map<string, ThirdParty>();
  const visited = new Set<string>();
  const queue: Array<{ from: string; deps: Record<string, string>; optional: Set<string> }> = [
    { from: root, deps: { ...rootPkg.optionalDependencies, ...rootPkg.dependencies }, optional: new Set(Object.keys(rootPkg.optionalDependencies ?? {})) },
  ];
  while (queue.length > 0) {
    const { from, deps, optional } = queue.shift()!;
    for (const name of Object.keys(deps)) {
      const dir = resolvePackage(name, from, root);
      if (dir === null) {
        // An optional dependency for another platform is simply not installed; a required one must be.
        if (optional.has(name)) continue;
        throw new Error(`notices: ${name} (needed by ${relative(root, from) || 'the package'}) is not installed; run npm ci first`);
      }
      if (visited.has(dir)) continue;
      visited.add(dir);
      const p = readJson(join(dir, 'package.json'));
      const key = `${p.name}@${p.version}`;
      if (!seen.has(key)) seen.set(key, { name: p.name, version: p.version, license: licenseOf(p), homepage: homepageOf(p), texts: textsOf(dir) });
      queue.push({ from: dir, deps: { ...p.optionalDependencies, ...p.dependencies }, optional: new Set(Object.keys(p.optionalDependencies ?? {})) });
    }
  }
  return [...seen.values()].sort((a, b) => (a.name === b.name ? a.version.localeCompare(b.version) : a.name < b.name ? -1 : 1));
}

/** The face models: not code, so not in the tree above; where their weights come from and under what terms. */
function modelsSection(root: string): string {
  const faceApi = productionTree(root).find((p) => p.name === '@vladmandic/face-api');
  const manifest = JSON.parse(readFileSync(join(root, 'models', 'manifest.json'), 'utf8')) as { models: Record<string, { file: string; sha256: string; modality: string; source: { package: string; version: string } }> };
  const rows = Object.entries(manifest.models).map(([name, m]) => `| ${m.file} | ${m.modality} | ${m.source.package} ${m.source.version} | \`${m.sha256.slice(0, 16)}…\` |`);
  return `## The model files

| file | modality | built from | sha256 |
| --- | --- | --- | --- |
${rows.join('\n')}

The face models are converted to ONNX by this package's own code (models/face/) from the TF.js weights that
@vladmandic/face-api ${faceApi?.version ?? ''} ships (MIT, Copyright (c) Vladimir Mandic; its licence text is in
the list below), a maintained fork of face-api.js (MIT, Copyright (c) 2018 Vincent Mühler):

- face_detector_tiny and face_landmarks_68 are face-api.js's own nets (a tiny YOLO-style face detector and a
  68-point landmark CNN), trained by its author and published with it under MIT. They are not dlib's
  shape_predictor_68_face_landmarks (trained on iBUG 300-W, whose licence excludes commercial use), which this
  package neither ships nor uses.
- face_descriptor_resnet29 is dlib's face recognition ResNet (dlib_face_recognition_resnet_model_v1, a ResNet with
  29 convolution layers giving 128-D descriptors), as ported to TF.js by face-api.js. Its weights were trained by
  Davis King, who released dlib's model files into the public domain ("anyone can do whatever they want with these
  model files"; dlib-models README). dlib itself is under the Boost Software License 1.0; no dlib code is carried.

The fingerprint graphs (models/fingerprint/*.onnx) are built from this package's own code
(models/fingerprint/build.ts) and fall under its LICENSE.
`;
}

function nodeSection(nodeDir: string): string {
  const license = readFileSync(join(nodeDir, 'LICENSE'), 'utf8').trim();
  const version = (readJson(join(nodeDir, 'package.json')) as PackageJson).version;
  return `## Node.js ${version} (the runtime carried by this bundle)\n\n<details><summary>LICENSE</summary>\n\n\`\`\`\`text\n${license}\n\`\`\`\`\n\n</details>\n`;
}

export function renderNotices(root: string, nodeDir?: string): string {
  const pkg = readJson(join(root, 'package.json'));
  const tree = productionTree(root);
  const table = tree.map((p) => `| ${p.name} | ${p.version} | ${p.license} | ${p.texts.length > 0 ? p.texts.map((t) => t.file).join(', ') : 'none in the package'} |`);
  const bodies = tree.map((p) => {
    const head = `### ${p.name} ${p.version} (${p.license})${p.homepage ? `\n\n${p.homepage}` : ''}`;
    if (p.texts.length === 0) return `${head}\n\nThe package carries no licence file; its package.json states ${p.license}.\n`;
    return `${head}\n\n${p.texts.map((t) => `<details><summary>${t.file}</summary>\n\n\`\`\`\`text\n${t.text}\n\`\`\`\`\n\n</details>`).join('\n\n')}\n`;
  });
  return `# Third-party notices for ${pkg.name} ${pkg.version}

Generated by \`npm run notices\` (scripts/notices.ts) from the installed production dependency tree
(${tree.length} packages, this machine's platform: ${process.platform}-${process.arch}; a release bundle for another
platform carries its own, generated from its tree) and from models/manifest.json. Do not edit by hand.
${pkg.name} itself: see LICENSE. The kiosk image's Debian packages carry their terms in /usr/share/doc/*/copyright.

${modelsSection(root)}
${nodeDir ? nodeSection(nodeDir) : ''}
## npm packages

| package | version | licence (package.json) | licence files |
| --- | --- | --- | --- |
${table.join('\n')}

${bodies.join('\n')}`;
}

function arg(name: string): string | undefined {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

if (import.meta.filename === process.argv[1]) {
  const root = arg('--root') ?? join(import.meta.dirname, '..');
  const out = arg('--out') ?? join(root, 'NOTICES.md');
  const text = renderNotices(root, arg('--node'));
  if (process.argv.includes('--check')) {
    const onDisk = existsSync(out) ? readFileSync(out, 'utf8') : '';
    if (onDisk !== text) {
      console.error(`notices: ${relative(process.cwd(), out)} is not what the installed tree gives; run \`npm run notices\``);
      process.exit(1);
    }
    console.error(`notices: ${relative(process.cwd(), out)} is up to date`);
  } else {
    writeFileSync(out, text);
    console.error(`notices: wrote ${relative(process.cwd(), out)} (${productionTree(root).length} packages)`);
  }
}
