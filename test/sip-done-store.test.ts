// The store of completed server transactions (sip/done-store.ts): what is put is found byte for
// byte until it expires or the budget lets it go, across segments, through growth and deletions
// from the middle of probe runs, checked against a Map doing the same.
import t from 'tap';
import { DoneStore, ENTRY_OVERHEAD, SEGMENT } from '../sip/done-store.ts';

const key = (i: number): string => `SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK-${i}\nREGISTER\ncall-${i}@host`;
const res = (i: number): Buffer => Buffer.from(`SIP/2.0 200 OK\r\nCSeq: ${i} REGISTER\r\n${'x'.repeat(i % 97)}\r\n\r\n`, 'latin1');

t.test('entries are found byte for byte until they expire, in order', (t) => {
  const s = new DoneStore(1_000_000, 1 << 30);
  for (let i = 0; i < 5000; i++) s.put(key(i), res(i), 1000 + i);
  t.equal(s.size, 5000);
  let same = 0;
  for (let i = 0; i < 5000; i++) if (s.get(key(i))?.equals(res(i))) same++;
  t.equal(same, 5000, 'every response is found under its own key');
  t.equal(s.get(key(5000)), undefined, 'a key never put is not found');
  t.equal(s.get(key(1).replace('REGISTER', 'OPTIONS')), undefined, 'nor one that differs by a word');
  s.expire(1000 + 2499);
  t.equal(s.size, 2500, 'those due by then are gone');
  t.equal(s.get(key(2499)), undefined);
  t.ok(s.get(key(2500))?.equals(res(2500)), 'the next one is still there');
  s.expire(Infinity);
  t.equal(s.size, 0);
  t.equal(s.bytes, 0, 'and their bytes with them');
  t.end();
});

t.test('the budget: the oldest go first, by count and by bytes; too large an entry is not kept', (t) => {
  const byCount = new DoneStore(100, 1 << 30);
  let evicted = 0;
  for (let i = 0; i < 250; i++) evicted += byCount.put(key(i), res(i), i);
  t.equal(byCount.size, 100);
  t.equal(evicted, 150, 'each put reports the entries it let go');
  t.equal(byCount.get(key(149)), undefined);
  t.ok(byCount.get(key(150))?.equals(res(150)));
  const budget = 20_000;
  const byBytes = new DoneStore(1_000_000, budget);
  for (let i = 0; i < 1000; i++) {
    byBytes.put(key(i), res(i), i);
    if (byBytes.bytes > budget) t.fail(`over budget after ${i}: ${byBytes.bytes}`);
  }
  t.ok(byBytes.segmentBytes <= SEGMENT, `its bytes stay in one segment (${byBytes.segmentBytes} bytes)`);
  t.ok(byBytes.get(key(999))?.equals(res(999)), 'the newest is kept');
  t.equal(byBytes.get(key(0)), undefined, 'the oldest is gone');
  const big = Buffer.alloc(budget);
  t.equal(byBytes.put('big', big, 5000), 0, 'an entry over the whole budget evicts nothing');
  t.equal(byBytes.get('big'), undefined, 'and is not kept');
  t.ok(byBytes.get(key(999)), 'the others are still there');
  t.end();
});

t.test('segments: entries span many, each is let go once the oldest entry has left it, and one large entry has its own', (t) => {
  const s = new DoneStore(1_000_000, 1 << 30);
  const body = (i: number): Buffer => Buffer.alloc(60_000, i & 0xff);
  for (let i = 0; i < 200; i++) s.put(key(i), body(i), i);
  t.ok(s.segmentBytes >= 12 * SEGMENT && s.segmentBytes <= 13 * SEGMENT, `200 entries of 60 KB fill 12-13 segments (${s.segmentBytes / SEGMENT})`);
  let same = 0;
  for (let i = 0; i < 200; i++) if (s.get(key(i))?.equals(body(i))) same++;
  t.equal(same, 200, 'every entry is found whole, across segment boundaries');
  s.expire(149);
  t.ok(s.segmentBytes <= 4 * SEGMENT, `with 50 left, their segments and no more are kept (${s.segmentBytes / SEGMENT})`);
  t.ok(s.get(key(150))?.equals(body(150)) && s.get(key(199))?.equals(body(199)), 'the rest are intact');
  const big = Buffer.alloc(SEGMENT + 10, 7);
  s.put('big', big, 300);
  t.ok(s.get('big')?.equals(big), 'an entry larger than a segment is kept whole');
  s.expire(Infinity);
  t.equal(s.size, 0);
  t.equal(s.segmentBytes, 0, 'empty, it holds no segment (one is kept aside as the spare)');
  for (let i = 0; i < 20; i++) s.put(key(i), body(i), 400 + i);
  t.equal(s.get(key(19))?.equals(body(19)), true, 'and is used again');
  t.end();
});

t.test('against a Map: random puts, expiries, evictions and lookups across segments and growth', (t) => {
  let seed = 12345;
  const rnd = (n: number): number => {
    seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
    return seed % n;
  };
  const maxEntries = 3000;
  const s = new DoneStore(maxEntries, 400_000);
  // the model: keys in put order with their responses and deadlines
  const order: Array<{ k: string; r: Buffer; at: number }> = [];
  const cost = (e: { k: string; r: Buffer }): number => Buffer.byteLength(e.k) + e.r.length + ENTRY_OVERHEAD;
  let bytes = 0;
  let now = 0;
  let bad = 0;
  for (let step = 0; step < 60_000; step++) {
    const op = rnd(10);
    if (op < 5) {
      // many keys share all but a few characters
      const i = rnd(1_000_000);
      const e = { k: rnd(4) === 0 ? `k${i % 50}-${step}` : key(i) + step, r: res(rnd(5000)), at: now + 50 };
      s.put(e.k, e.r, e.at);
      // the model's budget: the same rule, oldest first
      order.push(e);
      bytes += cost(e);
      while (order.length > maxEntries || bytes > 400_000) bytes -= cost(order.shift() as { k: string; r: Buffer });
    } else if (op < 6) {
      now += rnd(20);
      s.expire(now);
      while (order.length > 0 && order[0].at <= now) bytes -= cost(order.shift() as { k: string; r: Buffer });
    } else if (order.length > 0) {
      const e = order[rnd(order.length)];
      if (!(s.get(e.k)?.equals(e.r) ?? false)) bad++;
      if (s.get(e.k + 'x') !== undefined) bad++;
    }
    if (s.size !== order.length || s.bytes !== bytes) {
      t.fail(`step ${step}: ${s.size} entries and ${s.bytes} bytes, the model has ${order.length} and ${bytes}`);
      break;
    }
  }
  t.equal(bad, 0, 'every lookup agreed with the model');
  t.ok(s.segmentBytes <= SEGMENT, `its bytes stayed in one segment (${s.segmentBytes} bytes)`);
  let found = 0;
  for (const e of order) if (s.get(e.k)?.equals(e.r)) found++;
  t.equal(found, order.length, `all ${order.length} live entries are found at the end`);
  t.end();
});
