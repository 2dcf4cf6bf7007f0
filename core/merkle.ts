// RFC 6962 Merkle tree over record ids: leaves hashed with a 0x00 prefix and inner nodes with 0x01,
// so a leaf can never pose as a node (no CVE-2012-2459-style duplicate-leaf mutation), and the
// tree is split at the largest power of two below n instead of duplicating odd leaves.
import { sha256, sha256Parts, sha256PrefixedInto } from './hash.ts';

const LEAF_PREFIX = 0;
const NODE_PREFIX = 1;
const LEAF = Uint8Array.of(LEAF_PREFIX);
const NODE = Uint8Array.of(NODE_PREFIX);

export function leafHash(id: Uint8Array): Uint8Array {
  return sha256Parts(LEAF, id);
}

export function nodeHash(left: Uint8Array, right: Uint8Array): Uint8Array {
  return sha256Parts(NODE, left, right);
}

function splitPoint(n: number): number {
  let k = 1;
  while (k << 1 < n) k <<= 1;
  return k;
}

function rootOfLeaves(leaves: Uint8Array[], lo: number, hi: number): Uint8Array {
  const n = hi - lo;
  if (n === 1) return leaves[lo];
  const k = splitPoint(n);
  return nodeHash(rootOfLeaves(leaves, lo, lo + k), rootOfLeaves(leaves, lo + k, hi));
}

/**
 * The root, computed level by level in one array: pairs are hashed left to right and an odd last
 * node moves up a level unhashed, which is the same tree as splitting at the largest power of two
 * below n (test/core-units.test.ts compares the two at every size to 70), without an array made
 * per leaf and per node.
 */
export function merkleRoot(ids: Uint8Array[]): Uint8Array {
  const n = ids.length;
  if (n === 0) return sha256(new Uint8Array(0));
  const level = new Uint8Array(n * 32);
  for (let i = 0; i < n; i++) sha256PrefixedInto(LEAF_PREFIX, ids[i], 0, ids[i].length, level, i * 32);
  for (let m = n; m > 1; m = (m >> 1) + (m & 1)) {
    const pairs = m >> 1;
    for (let i = 0; i < pairs; i++) sha256PrefixedInto(NODE_PREFIX, level, i * 64, 64, level, i * 32);
    if ((m & 1) === 1) level.copyWithin(pairs * 32, (m - 1) * 32, m * 32);
  }
  return level.slice(0, 32);
}

/** merkleRoot by the recursive definition (RFC 6962 section 2.1), for tests to compare it with. */
export function merkleRootRecursive(ids: Uint8Array[]): Uint8Array {
  if (ids.length === 0) return sha256(new Uint8Array(0));
  return rootOfLeaves(ids.map(leafHash), 0, ids.length);
}

/** The audit path of leaf `index` (RFC 6962 section 2.1.1), nearest sibling first. */
export function inclusionProof(ids: Uint8Array[], index: number): Uint8Array[] {
  if (index < 0 || index >= ids.length) throw new RangeError('leaf index out of range');
  const leaves = ids.map(leafHash);
  const path: Uint8Array[] = [];
  const walk = (m: number, lo: number, hi: number): void => {
    const n = hi - lo;
    if (n === 1) return;
    const k = splitPoint(n);
    if (m < k) {
      walk(m, lo, lo + k);
      path.push(rootOfLeaves(leaves, lo + k, hi));
    } else {
      walk(m - k, lo + k, hi);
      path.push(rootOfLeaves(leaves, lo, lo + k));
    }
  };
  walk(index, 0, ids.length);
  return path;
}

/** Verifies an audit path against a root (RFC 9162 section 2.1.3.2). */
export function verifyInclusion(id: Uint8Array, index: number, size: number, path: Uint8Array[], root: Uint8Array): boolean {
  if (index < 0 || index >= size) return false;
  let fn = index;
  let sn = size - 1;
  let r = leafHash(id);
  for (const p of path) {
    if (sn === 0) return false;
    if ((fn & 1) === 1 || fn === sn) {
      r = nodeHash(p, r);
      if ((fn & 1) === 0) {
        while ((fn & 1) === 0 && fn !== 0) {
          fn >>= 1;
          sn >>= 1;
        }
      }
    } else {
      r = nodeHash(r, p);
    }
    fn >>= 1;
    sn >>= 1;
  }
  if (sn !== 0) return false;
  return r.length === root.length && r.every((b, i) => b === root[i]);
}
