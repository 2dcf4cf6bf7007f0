// The state's views: what a view changes in place and what it must copy. A view appends to the
// list of a height's name commitments in place once it made that list itself (a copy per
// commitment made a block of n commitments cost n^2/2), so these check that no other holder of
// a list (the committed state, a parent view, a failed child, undo data) ever sees it change.
import t from 'tap';
import { randomBytes } from 'node:crypto';
import { newKey } from './helpers.ts';
import { signRecord, Kind, type NameCommit, type Rec } from '../core/records.ts';
import { ChainState, StateView, applyRecord, commitKey, commitTo, keys, type ApplyContext, type CommitsAtEntry } from '../core/state.ts';
import { NETWORKS } from '../consensus/params.ts';
import { toHex } from '../core/hash.ts';

const P = NETWORKS.regtest;
const HEIGHT = 7;
const ctx: ApplyContext = { height: HEIGHT, time: 1_700_000_000, rules: P };
const AT = keys.commitsAt(HEIGHT);

function commit(): Rec {
  const k = newKey();
  return signRecord<NameCommit>(P.name, k.secret, { kind: Kind.NameCommit, pubkey: k.pub, commitment: randomBytes(32) });
}
/** The commitments a reader sees listed at HEIGHT, as hex. */
function listed(v: { get(key: string): unknown }): string[] {
  return ((v.get(AT) as CommitsAtEntry | undefined)?.list ?? []).map(toHex);
}
const keyOf = (r: Rec): string => toHex(commitKey((r.body as NameCommit).commitment));

t.test('a block of commitments: every one listed, in order, whatever holds the lists before', async (t) => {
  t.equal(P.minFeeRate, 0, 'regtest asks no fee (these records pay none)');
  const base = new ChainState();
  const first = commit();
  const v0 = new StateView(base);
  applyRecord(v0, first, ctx);
  commitTo(base, v0.list());
  const committed = base.get(AT);
  t.same(listed(base), [keyOf(first)], 'one commitment committed at the height');

  const view = new StateView(base);
  const recs = Array.from({ length: 300 }, commit);
  for (const r of recs) applyRecord(view, r, ctx);
  t.same(listed(view), [first, ...recs].map(keyOf), 'the view lists all 301, in order');
  t.equal(base.get(AT), committed, 'the committed entry is the same object');
  t.same(listed(base), [keyOf(first)], 'and still lists one');
  const change = view.list().find((c) => c.key === AT);
  t.same((change?.before as CommitsAtEntry).list.map(toHex), [keyOf(first)], 'the undo data holds the list before the block');
});

t.test('a failed child view leaves its parent\'s list as it was; a merged one is copied before the parent adds', async (t) => {
  const parent = new StateView(new ChainState());
  const a = commit();
  applyRecord(parent, a, ctx);
  const mine = parent.get(AT);

  const failed = parent.child();
  applyRecord(failed, commit(), ctx);
  t.equal(listed(failed).length, 2, 'the child sees two');
  t.same(listed(parent), [keyOf(a)], 'the parent still one: the child copied the list it did not make');
  t.equal(parent.get(AT), mine, 'the parent\'s entry is the same object');

  const ok = parent.child();
  const b = commit();
  applyRecord(ok, b, ctx);
  parent.merge(ok);
  const merged = parent.get(AT) as CommitsAtEntry;
  t.same(listed(parent), [keyOf(a), keyOf(b)], 'merged: the parent lists both');
  const c = commit();
  applyRecord(parent, c, ctx);
  t.same(listed(parent), [keyOf(a), keyOf(b), keyOf(c)], 'then its own third');
  t.same(merged.list.map(toHex), [keyOf(a), keyOf(b)], 'the entry the child made is not changed by the parent (it copied it)');
  t.same(listed(ok), [keyOf(a), keyOf(b)], 'as the child still reads it');

  // a commitment made twice is refused and changes nothing
  const again = new StateView(new ChainState());
  applyRecord(again, a, ctx);
  t.throws(() => applyRecord(again, a, ctx), { code: 'duplicate-commit' }, 'the same commitment twice is refused');
  t.same(listed(again), [keyOf(a)], 'and listed once');
});
