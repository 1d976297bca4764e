import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { mulberry32 } from '../models/common/prng.ts';
import {
  arraySubtreeHash,
  consistencyPath,
  consistencyProof,
  emptyRoot,
  inclusionProof,
  leafHash,
  MerkleFrontier,
  nodeHash,
  perfectSubtrees,
  rootFromInclusionProof,
  rootOf,
  splitPoint,
  verifyConsistency,
  verifyInclusion,
} from '../protocol/merkle.ts';
import { canonicalJson, isCanonicalJson } from '../protocol/canonical.ts';

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');
const sha = (...parts: Uint8Array[]) => {
  const h = createHash('sha256');
  for (const p of parts) h.update(p);
  return h.digest();
};

// The eight leaves of the Certificate Transparency reference tree, and the published hashes of its nodes.
const CT_LEAVES = ['', '00', '10', '2021', '3031', '40414243', '5051525354555657', '606162636465666768696a6b6c6d6e6f'].map((h) => Buffer.from(h, 'hex'));
const CT_ROOTS = [
  '6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d',
  'fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125',
  'aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77',
  'd37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7',
  '4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4',
  '76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef',
  'ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c',
  '5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328',
];

describe('RFC 9162 hashing', () => {
  it('hashes leaves and nodes with their domain-separation prefixes', () => {
    expect(hex(leafHash(Buffer.from('abc')))).toBe(hex(sha(Buffer.from([0]), Buffer.from('abc'))));
    const a = leafHash(Buffer.from('a'));
    const b = leafHash(Buffer.from('b'));
    expect(hex(nodeHash(a, b))).toBe(hex(sha(Buffer.from([1]), a, b)));
    expect(hex(emptyRoot())).toBe('e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855');
    expect(hex(rootOf([]))).toBe(hex(emptyRoot()));
  });

  it('splits at the largest power of two below n', () => {
    expect([2, 3, 4, 5, 8, 9, 100, 2 ** 40 + 1].map(splitPoint)).toEqual([1, 2, 2, 4, 4, 8, 64, 2 ** 40]);
    expect(() => splitPoint(1)).toThrow();
  });

  it('reproduces the Certificate Transparency reference roots', () => {
    const hashes = CT_LEAVES.map(leafHash);
    for (let n = 1; n <= 8; n++) expect(hex(rootOf(hashes.slice(0, n)))).toBe(CT_ROOTS[n - 1]);
  });

  it('computes small trees by hand', () => {
    const L = ['d0', 'd1', 'd2', 'd3', 'd4', 'd5', 'd6'].map((s) => leafHash(Buffer.from(s)));
    const [a, b, c, d, e, f, g6] = L as [Buffer, Buffer, Buffer, Buffer, Buffer, Buffer, Buffer];
    expect(hex(rootOf([a]))).toBe(hex(a));
    expect(hex(rootOf([a, b]))).toBe(hex(nodeHash(a, b)));
    expect(hex(rootOf([a, b, c]))).toBe(hex(nodeHash(nodeHash(a, b), c)));
    expect(hex(rootOf([a, b, c, d, e]))).toBe(hex(nodeHash(nodeHash(nodeHash(a, b), nodeHash(c, d)), e)));
    // RFC 6962 2.1.3's example tree of seven leaves: g=H(a,b), h=H(c,d), i=H(e,f), j=d6, k=H(g,h), l=H(i,j).
    const gg = nodeHash(a, b);
    const h = nodeHash(c, d);
    const i = nodeHash(e, f);
    const j = g6;
    const k = nodeHash(gg, h);
    const l = nodeHash(i, j);
    const root = nodeHash(k, l);
    expect(hex(rootOf(L))).toBe(hex(root));
    // Its audit paths ...
    expect(inclusionProof(0, L).map(hex)).toEqual([b, h, l].map(hex));
    expect(inclusionProof(3, L).map(hex)).toEqual([c, gg, l].map(hex));
    expect(inclusionProof(4, L).map(hex)).toEqual([f, j, k].map(hex));
    expect(inclusionProof(6, L).map(hex)).toEqual([i, k].map(hex));
    // ... and consistency proofs: from size 3 [c, d, g, l], from 4 [l], from 6 [i, j, k].
    expect(consistencyProof(3, L).map(hex)).toEqual([c, d, gg, l].map(hex));
    expect(consistencyProof(4, L).map(hex)).toEqual([l].map(hex));
    expect(consistencyProof(6, L).map(hex)).toEqual([i, j, k].map(hex));
    expect(verifyConsistency(3, 7, nodeHash(gg, c), root, [c, d, gg, l])).toBe(true);
    expect(verifyConsistency(4, 7, k, root, [l])).toBe(true);
    expect(verifyConsistency(6, 7, nodeHash(k, i), root, [i, j, k])).toBe(true);
    for (const [idx, path] of [[0, [b, h, l]], [3, [c, gg, l]], [4, [f, j, k]], [6, [i, k]]] as const) {
      expect(verifyInclusion(idx, 7, L[idx]!, path, root)).toBe(true);
    }
  });

  it('matches the Certificate Transparency reference proofs', () => {
    const hashes = CT_LEAVES.map(leafHash);
    expect(inclusionProof(1, hashes.slice(0, 5)).map(hex)).toEqual([
      '6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d',
      '5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e',
      'bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b',
    ]);
    expect(inclusionProof(5, hashes).map(hex)).toEqual([
      'bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b',
      'ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0',
      'd37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7',
    ]);
    expect(consistencyProof(3, hashes).map(hex)).toEqual([
      '0298d122906dcfc10892cb53a73992fc5b9f493ea4c9badb27b791b4127a7fe7',
      '07506a85fd9dd2f120eb694f86011e5bb4662e5c415a62917033d4a9624487e7',
      'fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125',
      '6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4',
    ]);
    expect(consistencyProof(1, hashes)).toHaveLength(3);
    expect(consistencyProof(1, hashes.slice(0, 1))).toEqual([]);
  });

  it('refuses impossible proof requests', () => {
    const hashes = CT_LEAVES.map(leafHash);
    expect(() => inclusionProof(8, hashes)).toThrow(/not in a tree/);
    expect(() => inclusionProof(-1, hashes)).toThrow();
    expect(() => consistencyPath(5, 3, arraySubtreeHash(hashes))).toThrow();
    expect(consistencyProof(0, hashes)).toEqual([]);
    expect(verifyConsistency(0, 8, emptyRoot(), rootOf(hashes), [])).toBe(true);
    expect(verifyConsistency(0, 8, rootOf(hashes), rootOf(hashes), [])).toBe(false);
    expect(verifyConsistency(8, 8, rootOf(hashes), rootOf(hashes), [])).toBe(true);
    expect(verifyConsistency(8, 8, rootOf(hashes), rootOf(hashes.slice(0, 7)), [])).toBe(false);
    expect(verifyConsistency(5, 4, rootOf(hashes), rootOf(hashes), [])).toBe(false);
    expect(verifyConsistency(3, 8, rootOf(hashes.slice(0, 3)), rootOf(hashes), [])).toBe(false);
  });
});

describe('RFC 9162 proofs, property tests', () => {
  const rand = mulberry32(9162);
  const leaves = Array.from({ length: 200 }, (_, i) => leafHash(Buffer.from(`leaf-${i}-${rand()}`)));
  const sizes = [1, 2, 3, 4, 5, 7, 8, 9, 16, 17, 31, 32, 33, 63, 64, 65, 127, 128, 129, 200, ...Array.from({ length: 20 }, () => 1 + Math.floor(rand() * 200))];
  const flip = (b: Buffer, at: number) => {
    const c = Buffer.from(b);
    c[at % c.length] = c[at % c.length]! ^ 0x01;
    return c;
  };

  it('every inclusion proof verifies, and no altered one does', () => {
    for (const n of sizes) {
      const tree = leaves.slice(0, n);
      const root = rootOf(tree);
      for (let m = 0; m < n; m++) {
        const proof = inclusionProof(m, tree);
        expect(proof.length).toBeLessThanOrEqual(Math.ceil(Math.log2(n)));
        expect(verifyInclusion(m, n, tree[m]!, proof, root)).toBe(true);
        // Altered: a flipped bit in any element, the wrong leaf, index, size, root, a dropped or extra element.
        if (proof.length > 0) {
          const at = Math.floor(rand() * proof.length);
          const bad = proof.map((p, i) => (i === at ? flip(p, Math.floor(rand() * 32)) : p));
          expect(verifyInclusion(m, n, tree[m]!, bad, root)).toBe(false);
          expect(verifyInclusion(m, n, tree[m]!, proof.slice(0, -1), root)).toBe(false);
          expect(verifyInclusion(m, n, tree[m]!, proof.slice(1), root)).toBe(false);
        }
        expect(verifyInclusion(m, n, tree[m]!, [...proof, tree[0]!], root)).toBe(false);
        expect(verifyInclusion(m, n, flip(tree[m]!, 3), proof, root)).toBe(false);
        expect(verifyInclusion(m, n, tree[m]!, proof, flip(root, 7))).toBe(false);
        if (n > 1) expect(verifyInclusion((m + 1) % n, n, tree[m]!, proof, root)).toBe(false);
        // (The size is not checked by the proof alone: the signed tree head binds size and root together.)
        expect(verifyInclusion(n, n, tree[m]!, proof, root)).toBe(false);
        expect(rootFromInclusionProof(m, n, tree[m]!.subarray(1), proof)).toBeUndefined();
      }
    }
  });

  it('consistency proofs verify between every pair of sizes up to 48, and altered ones do not', () => {
    const roots = Array.from({ length: 49 }, (_, n) => rootOf(leaves.slice(0, n)));
    for (let n = 1; n <= 48; n++) {
      const tree = leaves.slice(0, n);
      for (let m = 1; m <= n; m++) {
        const proof = consistencyProof(m, tree);
        expect(verifyConsistency(m, n, roots[m]!, roots[n]!, proof)).toBe(true);
        if (m < n) {
          expect(proof.length).toBeGreaterThan(0);
          const at = Math.floor(rand() * proof.length);
          expect(verifyConsistency(m, n, roots[m]!, roots[n]!, proof.map((p, i) => (i === at ? flip(p, at) : p)))).toBe(false);
          expect(verifyConsistency(m, n, roots[m]!, roots[n]!, proof.slice(0, -1))).toBe(false);
          expect(verifyConsistency(m, n, roots[m]!, roots[n]!, [...proof, roots[0]!])).toBe(false);
          expect(verifyConsistency(m, n, flip(roots[m]!, 1), roots[n]!, proof)).toBe(false);
          expect(verifyConsistency(m, n, roots[m]!, flip(roots[n]!, 1), proof)).toBe(false);
          expect(verifyConsistency(m, n, roots[n]!, roots[m]!, proof)).toBe(false);
          if (m + 1 < n) expect(verifyConsistency(m + 1, n, roots[m]!, roots[n]!, proof)).toBe(false);
          // A different history of the same size cannot be proven consistent.
          const forked = [...tree.slice(0, m - 1), flip(tree[m - 1]!, 0), ...tree.slice(m)];
          expect(verifyConsistency(m, n, roots[m]!, rootOf(forked), consistencyProof(m, forked))).toBe(false);
        }
      }
    }
  });

  it('consistency proofs verify for random larger pairs', () => {
    for (let t = 0; t < 300; t++) {
      const n = 1 + Math.floor(rand() * 200);
      const m = 1 + Math.floor(rand() * n);
      const tree = leaves.slice(0, n);
      expect(verifyConsistency(m, n, rootOf(tree.slice(0, m)), rootOf(tree), consistencyProof(m, tree))).toBe(true);
    }
  });

  it('the frontier gives the same roots and perfect subtrees as the full computation', () => {
    const f = MerkleFrontier.empty();
    const full = arraySubtreeHash(leaves);
    expect(hex(f.root())).toBe(hex(emptyRoot()));
    for (let i = 0; i < leaves.length; i++) {
      const completed = f.append(leaves[i]!);
      expect(f.size).toBe(i + 1);
      expect(hex(f.root())).toBe(hex(rootOf(leaves.slice(0, i + 1))));
      for (const node of completed) {
        const start = node.index * 2 ** node.level;
        expect(start + 2 ** node.level).toBe(i + 1);
        expect(hex(node.hash)).toBe(hex(full(start, start + 2 ** node.level)));
      }
      const parts = perfectSubtrees(i + 1);
      expect(parts.reduce((s, p) => s + 2 ** p.level, 0)).toBe(i + 1);
      expect(f.roots.map(hex)).toEqual(parts.map((p) => hex(full(p.index * 2 ** p.level, (p.index + 1) * 2 ** p.level))));
      for (const [k, p] of parts.entries()) expect(f.subtree(p)).toBe(f.roots[k]);
      for (const p of parts) {
        if (p.level > 0) expect(f.subtree({ level: p.level - 1, index: p.index * 2 })).toBeUndefined();
        expect(f.subtree({ level: p.level, index: p.index + 1 })).toBeUndefined();
      }
      const reloaded = MerkleFrontier.fromRoots(i + 1, f.roots);
      expect(hex(reloaded.root())).toBe(hex(f.root()));
    }
    expect(() => MerkleFrontier.fromRoots(5, [leaves[0]!])).toThrow();
  });
});

describe('canonical JSON', () => {
  it('sorts keys, drops whitespace, and serialises like JCS', () => {
    expect(canonicalJson({ b: 1, a: [true, null, 'x'], c: { z: -0, y: 1.5e-7, x: 1e21 } })).toBe('{"a":[true,null,"x"],"b":1,"c":{"x":1e+21,"y":1.5e-7,"z":0}}');
    expect(canonicalJson({ '\u20ac': 1, '\r': 2, é: 3, a: 4 })).toBe('{"\\r":2,"a":4,"é":3,"€":1}');
    expect(canonicalJson('line\n"q"\u0001')).toBe('"line\\n\\"q\\"\\u0001"');
    expect(canonicalJson(Object.assign(Object.create(null) as object, { k: 'v' }))).toBe('{"k":"v"}');
  });

  it('refuses what JSON cannot carry exactly', () => {
    for (const bad of [{ a: undefined }, { a: NaN }, { a: Infinity }, { a: 1n }, new Date(0), Buffer.from('x'), { a: () => 1 }, '\ud800', [1, , 3]]) {
      expect(() => canonicalJson(bad)).toThrow(/cannot canonicalise/);
    }
    const cyclic: Record<string, unknown> = {};
    cyclic['self'] = cyclic;
    expect(() => canonicalJson(cyclic)).toThrow(/cycle/);
    // The same object twice is not a cycle.
    const shared = { x: 1 };
    expect(canonicalJson({ a: shared, b: shared })).toBe('{"a":{"x":1},"b":{"x":1}}');
  });

  it('recognises canonical bytes', () => {
    expect(isCanonicalJson(Buffer.from('{"a":1,"b":[2]}'))).toBe(true);
    expect(isCanonicalJson(Buffer.from('{"b":1,"a":2}'))).toBe(false);
    expect(isCanonicalJson(Buffer.from('{"a": 1}'))).toBe(false);
    expect(isCanonicalJson(Buffer.from('not json'))).toBe(false);
  });
});
