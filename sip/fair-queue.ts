// Per-source fairness for what arrives (Kamailio's pike answers the same need with a rate per
// address; this is a fair queue, so nobody is limited until the node is saturated).
//
// Messages wait in one queue per source address and are taken round-robin, a few per turn of
// the event loop. The few matters: the kernel hands the node up to 32 datagrams per read, so
// taking fewer than that per turn keeps the node reading faster than it handles. A source that
// sends more than its share then finds its queue full, and its excess is dropped as it is read,
// before parsing, at a small fraction of what handling it would cost; a phone that sends a
// message a second is handled at its next turn however hard another address floods. Without
// this, a flood fills the socket's buffer and the kernel drops everyone's datagrams alike.
//
// Queues are bounded in messages per source and in bytes overall. What is dropped is a
// datagram (UDP retransmits); a TCP connection is never dropped from, it is paused (`full`)
// and resumed once its source's queue has drained, so TCP's own flow control slows the sender.

/** Messages handled per turn of the event loop while anything waits (see above). */
const PER_TURN = 8;

export const enum Pushed {
  /** queued */
  Queued,
  /** queued, but the source is over its share: a stream should stop reading until `resume` */
  Full,
  /** not queued (a datagram): its source is over its share or the byte budget is spent */
  Dropped,
}

interface Source<T> {
  items: T[];
  sizes: number[];
  head: number;
  /** streams paused until this source drains */
  paused: Array<() => void> | null;
}

export interface FairQueueOptions {
  /**
   * most messages waiting from one source address (default 8192: a quarter second or more of
   * what the node handles at full load, so one busy peer's bursts and a GC pause are absorbed;
   * at 1024 a load generator's bursts were shed at a third of the node's capacity)
   */
  perSource?: number;
  /** most bytes waiting in all (default 32 MB) */
  maxBytes?: number;
}

export class FairQueue<T> {
  private readonly sources = new Map<string, Source<T>>();
  /** sources with something waiting, in turn order: ring of keys taken from `head` */
  private ring: string[] = [];
  private ringHead = 0;
  private scheduled = false;
  private stopped = false;
  private readonly perSource: number;
  private readonly maxBytes: number;
  /** bytes waiting */
  bytes = 0;
  /** counters for logs and tests */
  stats = { dropped: 0, paused: 0 };

  /**
   * `run` handles one message; `afterTurn`, when given, runs once the messages of a turn are
   * handled (the transport sends what they made then, in one burst).
   */
  constructor(
    private readonly run: (item: T, source: string) => void,
    opts: FairQueueOptions = {},
    private readonly afterTurn?: () => void,
  ) {
    this.perSource = opts.perSource ?? 8192;
    this.maxBytes = opts.maxBytes ?? 32 << 20;
  }

  /**
   * Queues a message of `bytes` from `source`. A datagram (`stream` false) over its source's
   * share, or beyond the byte budget while its source already has one waiting, is dropped; a
   * stream's message is always queued and `Full` asks the caller to pause (calling `onResume`
   * later, once the source has drained).
   */
  push(source: string, item: T, bytes: number, stream: boolean, onResume?: () => void): Pushed {
    if (this.stopped) return Pushed.Dropped;
    let s = this.sources.get(source);
    const waiting = s === undefined ? 0 : s.items.length - s.head;
    const over = waiting >= this.perSource || (waiting > 0 && this.bytes + bytes > this.maxBytes);
    if (over && !stream) {
      this.stats.dropped++;
      return Pushed.Dropped;
    }
    if (s === undefined) {
      s = { items: [], sizes: [], head: 0, paused: null };
      this.sources.set(source, s);
    }
    if (waiting === 0) this.ring.push(source);
    s.items.push(item);
    s.sizes.push(bytes);
    this.bytes += bytes;
    if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(this.turn);
    }
    if (!over) return Pushed.Queued;
    if (onResume !== undefined) (s.paused ??= []).push(onResume);
    this.stats.paused++;
    return Pushed.Full;
  }

  /** Messages waiting from `source`. */
  waiting(source: string): number {
    const s = this.sources.get(source);
    return s === undefined ? 0 : s.items.length - s.head;
  }

  private readonly turn = (): void => {
    this.scheduled = false;
    for (let n = 0; n < PER_TURN && this.ringHead < this.ring.length; n++) {
      const key = this.ring[this.ringHead++];
      const s = this.sources.get(key);
      if (s === undefined) continue;
      const item = s.items[s.head];
      this.bytes -= s.sizes[s.head];
      (s.items as Array<T | undefined>)[s.head] = undefined;
      s.head++;
      const left = s.items.length - s.head;
      if (left === 0) {
        this.sources.delete(key);
        this.resume(s);
      } else {
        this.ring.push(key); // its next message waits for everyone else's turn
        if (s.paused !== null && left <= this.perSource >> 1) this.resume(s);
        if (s.head > 64 && s.head * 2 > s.items.length) {
          s.items = s.items.slice(s.head);
          s.sizes = s.sizes.slice(s.head);
          s.head = 0;
        }
      }
      try {
        this.run(item, key);
      } catch {
        // the handler answers its own errors; one that escapes must not stop the others' turns
      }
    }
    this.afterTurn?.();
    if (this.ringHead > 1024 && this.ringHead * 2 > this.ring.length) {
      this.ring = this.ring.slice(this.ringHead);
      this.ringHead = 0;
    }
    if (this.ringHead < this.ring.length && !this.stopped) {
      this.scheduled = true;
      setImmediate(this.turn);
    }
  };

  private resume(s: Source<T>): void {
    const p = s.paused;
    if (p === null) return;
    s.paused = null;
    for (const f of p) f();
  }

  /** Drops everything waiting; nothing is queued after. */
  stop(): void {
    this.stopped = true;
    this.sources.clear();
    this.ring = [];
    this.ringHead = 0;
    this.bytes = 0;
  }
}
