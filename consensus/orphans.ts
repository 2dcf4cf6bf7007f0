// Blocks whose parent is not known yet. They wait here, bounded, until their parent connects
// (the chain then takes them in) or until newer orphans push them out, oldest first: a peer
// filling the pool with junk only evicts its own junk over time.
import { hashToHex } from '../core/hash.ts';
import type { Block } from '../core/block.ts';

export class OrphanPool {
  private readonly blocks = new Map<string, Block>();
  /** orphan hashes by the hash of their missing parent, so a connecting block finds its waiting children without a scan */
  private readonly byParent = new Map<string, Set<string>>();

  constructor(private readonly max = 256) {}

  get size(): number {
    return this.blocks.size;
  }

  has(hashHex: string): boolean {
    return this.blocks.has(hashHex);
  }

  add(hashHex: string, block: Block): void {
    if (this.blocks.has(hashHex)) return;
    if (this.blocks.size >= this.max) this.remove(this.blocks.keys().next().value as string);
    this.blocks.set(hashHex, block);
    const parent = hashToHex(block.header.prev);
    let siblings = this.byParent.get(parent);
    if (siblings === undefined) this.byParent.set(parent, (siblings = new Set()));
    siblings.add(hashHex);
  }

  /** Takes the orphans waiting for `parentHex` out of the pool. */
  takeChildren(parentHex: string): Block[] {
    const children = this.byParent.get(parentHex);
    if (children === undefined) return [];
    const out: Block[] = [];
    for (const hex of [...children]) {
      const b = this.remove(hex);
      if (b !== undefined) out.push(b);
    }
    return out;
  }

  private remove(hashHex: string): Block | undefined {
    const b = this.blocks.get(hashHex);
    if (b === undefined) return undefined;
    this.blocks.delete(hashHex);
    const parent = hashToHex(b.header.prev);
    const siblings = this.byParent.get(parent);
    siblings?.delete(hashHex);
    if (siblings?.size === 0) this.byParent.delete(parent);
    return b;
  }
}
