// The wallet and name commands as a user runs them, against a real node process on regtest.
import t from 'tap';
import { join } from 'node:path';
import { statSync } from 'node:fs';
import { runDots, startNode, getJson, postJson } from './util/proc.ts';
import { tmpDir } from './util/tmp.ts';
import { waitFor } from './util/wait.ts';

const nodeKeyFile = (dir: string): string => join(dir, 'node', 'node.key');

t.test('wallet and name commands end to end', async (t) => {
  const dir = tmpDir(t);
  const node = await startNode(t, { datadir: join(dir, 'node') });
  // A block every 200 ms: steady like a real network, unlike a regtest miner running flat out.
  let mining = true;
  const miner = (async (): Promise<void> => {
    while (mining) {
      await postJson(`${node.api}/api/dev/mine`, { count: 1 }).catch(() => undefined);
      await new Promise((r) => setTimeout(r, 200));
    }
  })();
  t.teardown(async () => {
    mining = false;
    await miner;
  });
  const common = ['--network', 'regtest', '--api', node.api];
  const wallet = join(dir, 'alice.key');
  const env = { DOTS_PASSPHRASE: 'alice secret' };
  const dots = (args: string[]): ReturnType<typeof runDots> => runDots(args, 30_000, env);

  let r = await dots(['wallet', 'new', '--wallet', wallet, ...common]);
  t.equal(r.code, 0, r.stderr);
  t.equal(statSync(wallet).mode & 0o777, 0o600, 'key file is owner-only');
  const address = /address (\S+)/.exec(r.stdout)?.[1] ?? '';
  const pubkey = /pubkey\s+([0-9a-f]{66})/.exec(r.stdout)?.[1] ?? '';
  t.match(address, /^rdots1/);
  r = await dots(['wallet', 'new', '--wallet', wallet, ...common]);
  t.equal(r.code, 2, 'never overwrites a wallet');
  r = await runDots(['wallet', 'address', '--wallet', wallet, '--passphrase', 'wrong', ...common]);
  t.equal(r.code, 2);
  t.match(r.stderr, /wrong passphrase/);

  // Pay alice from the node's own mining key (an unencrypted key file).
  const nodeKey = join(dir, 'node', 'node.key');
  r = await dots(['wallet', 'send', address, '250000', '--fee', '10', '--wallet', nodeKey, ...common]);
  t.equal(r.code, 0, r.stderr);
  await waitFor('payment confirmed', async () => {
    const b = await dots(['wallet', 'balance', '--wallet', wallet, ...common]);
    return /balance 0\.00250000 DOTS \(250000 units\) /.test(b.stdout);
  });
  // the node's network, not the default devnet: no --network needed against a regtest node
  r = await dots(['wallet', 'balance', '--wallet', wallet, '--api', node.api, '--units']);
  t.match(r.stdout, /^rdots1\S+ balance 250000 nonce 0$/m, 'without --network it asks the node which network it runs; --units prints the integer');
  r = await dots(['wallet', 'balance', '--wallet', wallet, '--api', node.api, '--network', 'devnet']);
  t.equal(r.code, 2, 'a --network that is not the node\'s is refused');
  t.match(r.stderr, /runs regtest, not devnet: drop --network/, 'in one line that says what to fix');
  r = await dots(['wallet', 'balance', '--wallet', nodeKeyFile(dir), '--api', node.api]);
  t.match(r.stdout, /^rdots1\S+ balance \d+\.\d{8} DOTS \(\d+ units\)/m, 'the node\'s own key (DATADIR/node.key) against a regtest node: its regtest balance');
  r = await dots(['wallet', 'send', address, '1', '--wallet', wallet, ...common]);
  t.equal(r.code, 0, 'alice can pay herself back');
  r = await dots(['wallet', 'history', '--wallet', wallet, ...common]);
  t.equal(r.code, 0, r.stderr);
  t.match(r.stdout, /transfer\s+\+0\.00250000 DOTS /, 'history lists the payment in');
  r = await dots(['wallet', 'send', address, '99999999999', '--wallet', wallet, ...common]);
  t.equal(r.code, 2);
  t.match(r.stderr, /insufficient-funds/);

  // Claim, renew, delegate, transfer a name: an address under a domain the wallet holds.
  r = await dots(['name', 'claim', 'sip:alice@dots.test', '--wallet', wallet, ...common]);
  t.equal(r.code, 2, 'not before the wallet holds the domain');
  t.match(r.stderr.trim(), /^dots: sip:alice@dots\.test is under dots\.test, which this wallet does not hold: claim dots\.test first/);
  r = await dots(['name', 'claim', 'dots.test', '--wallet', wallet, ...common]);
  t.equal(r.code, 0, r.stderr);
  await waitFor('the domain confirmed', async () => (await getJson<{ owner: string }>(`${node.api}/api/names/dots.test`)).body.owner === pubkey || undefined);
  r = await dots(['name', 'claim', 'sip:alice@dots.test', '--wallet', wallet, ...common]);
  t.equal(r.code, 0, r.stderr);
  t.match(r.stdout, /claim of sip:alice@dots.test pending/);
  const owned = await waitFor('claim confirmed', async () => {
    const n = await getJson<{ owner: string; seq: number }>(`${node.api}/api/names/${encodeURIComponent('sip:alice@dots.test')}`);
    return n.status === 200 && n.body.owner === pubkey ? n.body : undefined;
  });
  t.equal(owned.seq, 0);
  r = await dots(['name', 'renew', 'sip:alice@dots.test', '--wallet', wallet, ...common]);
  t.equal(r.code, 0, r.stderr);
  await waitFor('renewal confirmed', async () => (await getJson<{ seq: number }>(`${node.api}/api/names/${encodeURIComponent('sip:alice@dots.test')}`)).body.seq === 1);
  r = await dots(['name', 'delegate', 'sip:alice@dots.test', `${'ab'.repeat(20)},${'cd'.repeat(20)},${'ef'.repeat(20)}`, '--wallet', wallet, ...common]);
  t.equal(r.code, 0, r.stderr);
  await waitFor('delegation to three nodes confirmed', async () => (await getJson<{ delegates: string[] }>(`${node.api}/api/names/${encodeURIComponent('sip:alice@dots.test')}`)).body.delegates.join() === ['ab', 'cd', 'ef'].map((x) => x.repeat(20)).join());
  r = await dots(['name', 'delegate', 'sip:alice@dots.test', `${'ab'.repeat(20)},${'ab'.repeat(20)}`, '--wallet', wallet, ...common]);
  t.equal(r.code, 2, 'a node listed twice');
  t.match(r.stderr, /a node is listed twice/);
  r = await dots(['name', 'delegate', 'sip:alice@dots.test', 'xyz', '--wallet', wallet, ...common]);
  t.equal(r.code, 2, 'not a node id');
  t.match(r.stderr.trim(), /^dots: the nodes: "xyz" is not a node id/);
  const bob = join(dir, 'bob.key');
  const bobOut = await dots(['wallet', 'new', '--wallet', bob, ...common]);
  const bobPub = /pubkey\s+([0-9a-f]{66})/.exec(bobOut.stdout)?.[1] ?? '';
  r = await dots(['name', 'transfer', 'sip:alice@dots.test', bobPub, '--delegates', 'cd'.repeat(20), '--wallet', wallet, ...common]);
  t.equal(r.code, 0, r.stderr);
  const given = await waitFor('transfer confirmed', async () => {
    const n = (await getJson<{ owner: string; delegates: string[] }>(`${node.api}/api/names/${encodeURIComponent('sip:alice@dots.test')}`)).body;
    return n.owner === bobPub ? n : undefined;
  });
  t.same(given.delegates, ['cd'.repeat(20)], 'the new owner starts with the delegation the transfer named');
  r = await dots(['name', 'renew', 'sip:alice@dots.test', '--wallet', wallet, ...common]);
  t.equal(r.code, 2, 'the old owner can no longer act');
  t.match(r.stderr, /not owned by this wallet/);
  r = await dots(['name', 'show', 'sip:alice@dots.test', ...common]);
  t.match(r.stdout, bobPub);
  r = await dots(['name', 'claim', 'Not A Name', '--wallet', wallet, ...common]);
  t.equal(r.code, 2);
  t.match(r.stderr, /is not a name/);
});
