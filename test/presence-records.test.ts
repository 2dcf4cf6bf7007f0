// The compact form of presence (issue 17): one Presence record per node carries all its users'
// changes, each name by the number the chain gave it at its first claim. Its encoding is
// canonical, its signature bound to its kind and network, every entry follows the rules of a
// binding the node makes for itself (one block per rule that breaks it), the pool lets a node
// grow its pending record rather than pay for one per change, within limits, and routing reads
// the entries pending and confirmed as it reads bindings.
import t, { type Test } from 'tap';
import { randomBytes } from 'node:crypto';
import { openChain, extend, newKey, stateDump, commitRec as commit, claimRec as claim, announceRec as announce, claimAll, refusesBlock, type Key } from './helpers.ts';
import {
  signRecord,
  Kind,
  decodeRec,
  encodeBody,
  packEntries,
  unpackEntries,
  checkRecordSignature,
  sigTag,
  signingMessage,
  MAX_PRESENCE_ENTRIES,
  MAX_RECORD_BYTES,
  type NameTransfer,
  type Presence,
  type PresenceEntry,
  type Rec,
} from '../core/records.ts';
import { getBinding, getName, nameOfRef, slotOf } from '../core/state.ts';
import { encode } from '../core/encoding.ts';
import { signTagged } from '../core/sig.ts';
import { ValidationError } from '../core/errors.ts';
import { MAX_PRESENCE_VERSIONS, type Mempool } from '../core/mempool.ts';
import { resolveName, routingSource } from '../telecom/routing.ts';
import type { Chain, IndexEntry } from '../consensus/chain.ts';

const NET = 'regtest';

function presence(k: Key, seq: number, entries: PresenceEntry[]): Rec {
  const base = Math.min(...entries.map((e) => e.expires));
  return signRecord<Presence>(NET, k.secret, { kind: Kind.Presence, pubkey: k.pub, seq, base, entries });
}



/** Raw presence bytes with any entries blob, signed, for encodings signRecord would never make. */
function rawPresence(k: Key, blob: Uint8Array): Uint8Array {
  const fields = [10, k.pub, 1, 1_800_000_000, blob, 0];
  const sig = signTagged(k.secret, sigTag(NET, Kind.Presence), encode(fields));
  return encode([...fields, sig]);
}

function codeOf(f: () => unknown): string {
  try {
    f();
    return 'accepted';
  } catch (e) {
    if (e instanceof ValidationError) return e.code;
    throw e;
  }
}

t.test('presence entries are packed canonically, a few bytes each', async (t) => {
  const base = 1_800_000_000;
  const entries: PresenceEntry[] = [
    { ref: 0, status: 1, expires: base + 3600 },
    { ref: 1, status: 0, expires: base },
    { ref: 700, status: 1, expires: base + 600 },
    { ref: 4_000_000_000, status: 0, expires: base + 5 },
  ];
  const blob = packEntries(base, entries);
  t.same(unpackEntries(base, blob), entries, 'unpacked as packed');
  // ref 0: gap 0, 3600*2+1 (2 bytes); ref 1: gap 0, 0; ref 700: gap 698 (2), 1201 (2); ref 4e9: gap (5), 10
  t.equal(blob.length, 1 + 2 + 1 + 1 + 2 + 2 + 5 + 1, 'a user online for an hour in 3 bytes, an offline one in 2');
  const k = newKey();
  const rec = signRecord<Presence>(NET, k.secret, { kind: Kind.Presence, pubkey: k.pub, seq: 1_800_000_000_123, base, entries });
  t.same(decodeRec(rec.bytes).body, rec.body, 'a signed record reads back the same');
  t.equal(codeOf(() => checkRecordSignature(NET, rec.body)), 'accepted', 'its signature verifies');
  t.throws(() => packEntries(base, [entries[1], entries[0]]), /strictly increasing/, 'refs out of order cannot be packed');
  t.throws(() => packEntries(base, [{ ref: 3, status: 1, expires: base - 1 }]), /before the record's base/, 'nor an expiry before the base');

  const bad: Array<[string, number[], string]> = [
    ['a number with a needless trailing byte', [0x80, 0x00, 0x02], 'non-canonical'],
    ['a number longer than 5 bytes', [0x80, 0x80, 0x80, 0x80, 0x80, 0x01, 0x00], 'bad-encoding'],
    ['entries that end inside an entry', [0x05], 'bad-encoding'],
    ['a ref past 2^32', [0xff, 0xff, 0xff, 0xff, 0x1f, 0x00], 'bad-encoding'],
    ['no entries', [], 'bad-encoding'],
    [`more than ${MAX_PRESENCE_ENTRIES} entries`, new Array<number>(2 * (MAX_PRESENCE_ENTRIES + 1)).fill(0), 'bad-encoding'],
  ];
  for (const [what, bytes, code] of bad) t.equal(codeOf(() => decodeRec(rawPresence(k, Uint8Array.from(bytes)))), code, `${what}: ${code}`);
  t.equal(codeOf(() => decodeRec(rawPresence(k, new Uint8Array(2 * MAX_PRESENCE_ENTRIES)))), 'accepted', `${MAX_PRESENCE_ENTRIES} entries are taken`);
  // the largest record the packing allows still fits a record
  const worst = Array.from({ length: MAX_PRESENCE_ENTRIES }, (_, i) => ({ ref: i * 0x800000, status: 1, expires: 0xfffffffe }));
  const big = signRecord<Presence>(NET, k.secret, { kind: Kind.Presence, pubkey: k.pub, seq: Number.MAX_SAFE_INTEGER, base: 0, entries: worst, fee: Number.MAX_SAFE_INTEGER });
  t.ok(big.bytes.length <= MAX_RECORD_BYTES, `a full record at its widest: ${big.bytes.length} bytes`);

  // domain separation: the same key's signature over the same fields, made for another kind or network
  const asBinding = signTagged(k.secret, sigTag(NET, Kind.Binding), signingMessage(rec.body));
  t.equal(codeOf(() => checkRecordSignature(NET, { ...(rec.body as Presence), sig: asBinding })), 'bad-signature', "a binding's signature does not make a presence record");
  t.equal(codeOf(() => checkRecordSignature('devnet', rec.body)), 'bad-signature', "another network's");
  t.equal(encodeBody(rec.body).length, rec.bytes.length);
});

/** A chain with node N serving its domain's users, a stranger node S with a user of its own, a user-owned name served by N. */
async function world(t: Test): Promise<{ chain: Chain; pool: Mempool; n: Key; s: Key; tip: IndexEntry; ref: (name: string) => number }> {
  const { chain, pool } = await openChain(t);
  const n = newKey();
  const s = newKey();
  const user = newKey();
  let tip = await claimAll(chain, chain.tip, [[n, 'n.test'], [s, 's.test']], [announce(n), announce(s)]);
  tip = await claimAll(chain, tip, [[n, 'sip:alice@n.test'], [n, 'sip:bob@n.test'], [s, 'sip:eve@s.test'], [n, 'sip:carol@n.test']]);
  // carol's name goes to her own key, served by N
  const give = signRecord<NameTransfer>(NET, n.secret, { kind: Kind.NameTransfer, name: 'sip:carol@n.test', pubkey: n.pub, newOwner: user.pub, delegates: [n.address], nameSeq: 0 });
  tip = await extend(chain, tip, 1, { recs: [give] });
  const ref = (name: string): number => (getName(chain.state, name) as { ref: number }).ref;
  return { chain, pool, n, s, tip, ref };
}

t.test('every name gets a number at its first claim, in claim order, and keeps it', async (t) => {
  const { chain, ref } = await world(t);
  const names = ['n.test', 's.test', 'sip:alice@n.test', 'sip:bob@n.test', 'sip:eve@s.test', 'sip:carol@n.test'];
  t.same(names.map(ref), [0, 1, 2, 3, 4, 5], 'numbered in the order the chain claimed them');
  t.same(names.map((x) => nameOfRef(chain.state, ref(x))), names, 'each number stands for its name');
  t.equal(ref('sip:carol@n.test'), 5, 'a transfer keeps the number');
  t.equal(nameOfRef(chain.state, 6), undefined, 'no name has the next number yet');
});

t.test('a presence record binds every entry to its node, one block per rule that breaks it', async (t) => {
  const { chain, n, s, tip: start, ref } = await world(t);
  const time = start.header.time;
  const exp = time + 3600;
  const alice = ref('sip:alice@n.test');
  const bob = ref('sip:bob@n.test');
  const carol = ref('sip:carol@n.test');
  const eve = ref('sip:eve@s.test');
  const stranger = newKey();

  await refusesBlock(t, chain, start, [presence(stranger, 5, [{ ref: alice, status: 1, expires: exp }])], 'unknown-node', 'presence from a key that never announced a node');
  await refusesBlock(t, chain, start, [presence(n, 5, [{ ref: 9999, status: 1, expires: exp }])], 'unknown-name', 'an entry whose number no name has');
  // the attack: a node that does not serve alice says she is online there, to take her calls
  await refusesBlock(t, chain, start, [presence(s, 5, [{ ref: alice, status: 1, expires: exp }])], 'not-authorized', "a stranger node binding another node's user to itself");
  await refusesBlock(t, chain, start, [presence(n, 5, [{ ref: alice, status: 1, expires: exp }, { ref: eve, status: 1, expires: exp }])], 'not-authorized', 'one entry the node may not make sinks the whole record');
  t.equal(getBinding(chain.state, 'sip:alice@n.test'), undefined, 'and alice stays unbound');
  await refusesBlock(t, chain, start, [presence(n, 5, [{ ref: alice, status: 1, expires: time + 7 * 86_400 + 10 }])], 'binding-too-long', 'an expiry past the longest binding');

  // the valid record: its owner's node for two users, and as the delegate of a user-owned name
  const good = presence(n, 5, [{ ref: alice, status: 1, expires: exp }, { ref: bob, status: 0, expires: time }, { ref: carol, status: 1, expires: exp }]);
  let tip = await extend(chain, start, 1, { recs: [good] });
  for (const [name, status] of [['sip:alice@n.test', 1], ['sip:bob@n.test', 0], ['sip:carol@n.test', 1]] as const) {
    t.match(slotOf(getBinding(chain.state, name), n.address), { status, seq: 5, height: tip.height }, `${name}: N's slot, status ${status}, the record's sequence`);
  }
  const seen = routingSource(chain, { pendingBindings: () => [], pendingAnnouncements: () => [], routingVersion: 0 });
  const r = resolveName(seen, 'sip:alice@n.test', time, s.address);
  t.match(r, { kind: 'remote', status: 'online', confirmed: true }, 'another node routes alice to N');

  // replays and going back: each entry's sequence must pass the slot's
  await refusesBlock(t, chain, tip, [good], 'stale-binding-seq', 'the same record again (a replay)');
  await refusesBlock(t, chain, tip, [presence(n, 4, [{ ref: bob, status: 1, expires: exp }])], 'stale-binding-seq', 'a lower sequence');
  tip = await extend(chain, tip, 1, { recs: [presence(n, 6, [{ ref: alice, status: 0, expires: time }])] });
  t.equal(slotOf(getBinding(chain.state, 'sip:alice@n.test'), n.address)?.status, 0, 'the next sequence takes alice offline');
  t.equal(slotOf(getBinding(chain.state, 'sip:bob@n.test'), n.address)?.seq, 5, 'and leaves bob where he was');
});

t.test('a node grows its pending presence record instead of paying for one per change, within limits', async (t) => {
  const { chain, pool, n, s, tip, ref } = await world(t);
  const time = tip.header.time;
  const exp = time + 3600;
  const [alice, bob, carol] = ['sip:alice@n.test', 'sip:bob@n.test', 'sip:carol@n.test'].map(ref);
  const src = routingSource(chain, pool);
  const at = (name: string): string => {
    const r = resolveName(src, name, time, s.address);
    return r.kind === 'remote' ? `${r.status}${r.confirmed ? '' : ' pending'}` : r.kind;
  };
  const v1 = presence(n, 10, [{ ref: alice, status: 1, expires: exp }]);
  pool.add(v1);
  t.equal(at('sip:alice@n.test'), 'online pending', 'alice is routable while her change is pending');
  const v2 = presence(n, 10, [{ ref: alice, status: 1, expires: exp }, { ref: bob, status: 1, expires: exp }]);
  pool.add(v2);
  t.equal(pool.size, 1, 'the second version replaced the first');
  t.notOk(pool.has(Buffer.from(v1.id).toString('hex')), 'the first left the pool');
  t.equal(at('sip:bob@n.test'), 'online pending', 'bob routable from the second version');
  t.equal(codeOf(() => pool.add(presence(n, 10, [{ ref: bob, status: 1, expires: exp }]))), 'replacement-refused', 'a version that drops a name the pending one carries');
  t.equal(at('sip:alice@n.test'), 'online pending', 'alice still pending');
  // a version may change what it says of a name it carries (alice went offline meanwhile)
  const v3 = presence(n, 10, [{ ref: alice, status: 0, expires: time }, { ref: bob, status: 1, expires: exp }]);
  pool.add(v3);
  t.equal(at('sip:alice@n.test'), 'offline pending', 'alice offline in the third version');
  // a version that fails the rules leaves the pending one in place, and is not counted as a version
  const eve = ref('sip:eve@s.test');
  t.equal(codeOf(() => pool.add(presence(n, 10, [{ ref: alice, status: 0, expires: time }, { ref: bob, status: 1, expires: exp }, { ref: eve, status: 1, expires: exp }]))), 'not-authorized', "a version naming another node's user");
  t.ok(pool.has(Buffer.from(v3.id).toString('hex')), 'the third version still pending');

  // versions are capped: a node cannot make its peers relay its record without end
  for (let i = 4; i <= MAX_PRESENCE_VERSIONS; i++) pool.add(presence(n, 10, [{ ref: alice, status: 0, expires: time + i }, { ref: bob, status: 1, expires: exp }]));
  const over = presence(n, 10, [{ ref: alice, status: 0, expires: time + 999 }, { ref: bob, status: 1, expires: exp }, { ref: carol, status: 1, expires: exp }]);
  t.equal(codeOf(() => pool.add(over)), 'replacement-refused', `version ${MAX_PRESENCE_VERSIONS + 1} of one sequence`);
  const next = presence(n, 11, [{ ref: carol, status: 1, expires: exp }]);
  pool.add(next);
  t.equal(pool.size, 2, 'a record with the next sequence is taken beside it');
  // a version of a record its node sent another record after would be mined after that one
  t.equal(codeOf(() => pool.add(presence(n, 10, [{ ref: alice, status: 0, expires: time + 1 }, { ref: bob, status: 1, expires: exp }, { ref: carol, status: 0, expires: time }]))), 'replacement-refused', 'a version of a record that is not its node\'s last');

  // mined: the last version of each, in order
  // (the pool follows the chain's tip, as a node's does)
  await extend(chain, tip, 1, { recs: pool.select(chain.state, chain.nextContext(), 1_000_000, 100).recs });
  t.equal(pool.size, 0, 'both mined');
  t.equal(at('sip:bob@n.test'), 'online', 'bob online, confirmed');
  t.equal(at('sip:carol@n.test'), 'online', 'carol online, confirmed');
  t.equal(slotOf(getBinding(chain.state, 'sip:alice@n.test'), n.address)?.expires, time + MAX_PRESENCE_VERSIONS, 'alice as the last version said');
});

t.test('a reorganisation takes a name\'s number and its presence back with the block that gave them', async (t) => {
  const { chain, n, tip: fork, ref } = await world(t);
  const keysOf = (): Array<[string, string]> => stateDump(chain).filter(([k]) => /^[nibm]:/.test(k));
  const before = keysOf();
  const salt = randomBytes(32);
  let a = await extend(chain, fork, 1, { recs: [commit(n, 'sip:dave@n.test', salt)] });
  a = await extend(chain, a, 1, { recs: [claim(n, 'sip:dave@n.test', salt)] });
  a = await extend(chain, a, 1, { recs: [presence(n, 7, [{ ref: ref('sip:dave@n.test'), status: 1, expires: a.header.time + 60 }])] });
  t.equal(ref('sip:dave@n.test'), 6, 'dave got the next number');
  // a longer branch from the fork without them
  await extend(chain, fork, 4, { time: fork.header.time + 1 });
  t.equal(getName(chain.state, 'sip:dave@n.test'), undefined, 'dave left with his branch');
  t.equal(nameOfRef(chain.state, 6), undefined, 'and so did his number');
  t.same(keysOf(), before, 'names, numbers and bindings as they were at the fork');
  t.ok(a.height < chain.tip.height);
});
