// The `dots` executable as a user meets it: clear one-line errors, a locked data directory,
// and a node killed with SIGKILL again and again while it mines, which must restart every time
// with a consistent tip and state and without losing a confirmed record.
import t from 'tap';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { DOTS_BIN, NODE_FLAGS, NodeProc, runDots, startNode, getJson, postJson } from './util/proc.ts';
import { tmpDir } from './util/tmp.ts';
import { waitFor } from './util/wait.ts';
import { openChain, newKey, stateDump } from './helpers.ts';
import { signRecord, Kind, type NameCommit } from '../core/records.ts';
import { toHex } from '../core/hash.ts';
import { decodeBlock } from '../core/block.ts';
import { NETWORKS } from '../consensus/params.ts';

t.test('run as an executable (as npx runs it), bin/dots.js starts Node.js with a larger young generation', async (t) => {
  t.same(NODE_FLAGS, ['--max-semi-space-size=32'], 'its first line gives the flag, which the tests\' nodes get too');
  // the script itself is the command: env reads its first line and runs node with the flag
  const node = await NodeProc.start({ datadir: tmpDir(t), wrap: (_cmd, args) => [DOTS_BIN, args.slice(args.indexOf(DOTS_BIN) + 1)] });
  t.teardown(() => node.stop());
  const argv = readFileSync(`/proc/${node.child.pid}/cmdline`, 'utf8').split('\0');
  t.equal(argv[1], '--max-semi-space-size=32', 'the node process is node --max-semi-space-size=32 bin/dots.js node ...');
  t.equal(argv[2], DOTS_BIN);
});

t.test('bad flags get one line saying what to fix', async (t) => {
  const cases: Array<[string[], RegExp]> = [
    [['node', '--api-port', 'abc'], /--api-port must be a port number/],
    [['node', '--network', 'moon'], /--network must be one of/],
    [['node', '--bogus'], /Unknown option '--bogus'/],
    [['node', '--bootstrap', 'localhost:1234'], /--bootstrap must be a multiaddr/],
    [['node', '--sip-announce', 'bad host!'], /--sip-announce must be HOST or HOST:PORT/],
    [['node', '--sip-announce', '203.0.113.7:0'], /--sip-announce: the announced port cannot be 0/],
    [['node', '--sip-announce', '999.1.2.3'], /"999\.1\.2\.3" is not an IPv4 address/],
    [['node', '--p2p-announce', '/ip4/203.0.113.7'], /--p2p-announce must be a multiaddr like/],
    // where nodes are strangers on the internet, nobody can reach 0.0.0.0 or loopback
    [['node', '--network', 'testnet'], /on testnet the node would announce sip:127\.0\.0\.1, which no other node can reach: pass --sip-announce HOST\[:PORT\]/],
    [['node', '--network', 'mainnet', '--sip-host', '0.0.0.0'], /on mainnet the node would announce sip:0\.0\.0\.0/],
    [['node', '--network', 'mainnet', '--sip-announce', 'localhost'], /on mainnet the node would announce sip:localhost/],
    [['node', '--network', 'testnet', '--sip-announce', 'sip.example.org'], /on testnet the node would announce \/ip4\/127\.0\.0\.1 for p2p, which no other node can reach: pass --p2p-announce/],
    [['node', '--network', 'testnet', '--sip-announce', '[::1]:5060', '--p2p-announce', '/dns4/node.example.org/tcp/27070'], /would announce sip:\[::1\], which no other node can reach/],
    [['node', '--tls-cert', '/etc/ssl/node.pem'], /--tls-cert and --tls-key go together/],
    [['node', '--require-tls', '--no-tls'], /--require-tls needs TLS: drop --no-tls/],
    [['node', '--no-tls', '--tls-port', '5061'], /--no-tls cannot go with --tls-port/],
    [['node', '--ws-tls'], /--ws-tls goes with --ws-port N/],
    [['node', '--ice-server', 'http://stun.example.org'], /--ice-server must be a STUN server like stun:/],
    [['node', '--trunk', 'pbx.example.org:5060'], /--trunk must be your SIP server's address as sip:IP\[:PORT\]/],
    [['node', '--trunk', 'sip:127.0.0.1:70000'], /--trunk: port 70000 is out of range/],
    [['node', '--trunk', 'sip:127.0.0.1', '--trunk-allow', 'pbx.example.org'], /--trunk-allow must be an IP address or IP:PORT/],
    [['node', '--trunk-allow', '127.0.0.1'], /--trunk-allow goes with --trunk/],
    [['node', '--fee-rate', 'cheap'], /--fee-rate must be a whole number of units per byte of at least 1/],
    [['user', 'add', 'kuser', '--trunk', '--password', 'pw'], /--trunk and --password do not go together/],
    [['frobnicate'], /unknown command "frobnicate"/],
    [['wallet', 'send', 'xyz', '10', '--network', 'regtest'], /not a valid address/],
  ];
  for (const [args, re] of cases) {
    const r = await runDots(args);
    t.equal(r.code, 2, `${args.join(' ')}: exit code 2`);
    t.match(r.stderr, re, `${args.join(' ')}: message`);
    t.equal(r.stderr.trim().split('\n').length, 1, `${args.join(' ')}: one line`);
    t.notMatch(r.stderr, /at .*\.ts:\d+/, 'no stack trace');
  }
  const help = await runDots(['--help']);
  t.equal(help.code, 0);
  t.match(help.stdout, /dots node \[options\]/);
  for (const b of ['hash', 'chain', 'sync', 'sip', 'calls']) t.match(help.stdout, new RegExp(`^  ${b} `, 'm'), `dots --help lists bench ${b}`);
  // Each command explains itself, the benchmarks included (their --help was an option error).
  for (const [cmd, re] of [['bench', /Benchmarks \(dots bench NAME/], ['node', /--sip-keepalive N/], ['wallet', /dots wallet send ADDRESS AMOUNT/], ['name', /dots name claim NAME/], ['user', /dots user add NAME --password PW/]] as const) {
    const r = await runDots([cmd, '--help']);
    t.equal(r.code, 0, `dots ${cmd} --help: exit code 0`);
    t.match(r.stdout, re, `dots ${cmd} --help: its part of the help`);
    t.equal(r.stderr, '', `dots ${cmd} --help: nothing on stderr`);
  }
  const none = await runDots([]);
  t.equal(none.code, 2, 'no command: the help, and exit code 2');
  t.match(none.stdout, /Usage:/);
});

t.test('a data directory is locked against a second process', async (t) => {
  const dir = tmpDir(t);
  const a = await startNode(t, { datadir: dir });
  const b = await runDots(['node', '--network', 'regtest', '--datadir', dir, '--api-port', '0']);
  t.equal(b.code, 2);
  t.match(b.stderr, /in use by another dots process/);
  const s = await getJson<{ height: number }>(`${a.api}/api/status`);
  t.equal(s.status, 200, 'the first node keeps running');
  // Another network's data directory is refused too.
  a.child.kill('SIGTERM');
  t.equal(await a.exited, 0, 'SIGTERM stops cleanly');
  const c = await runDots(['node', '--network', 'devnet', '--datadir', dir, '--api-port', '0']);
  t.equal(c.code, 2);
  t.match(c.stderr, /holds the regtest chain/);
});

t.test('SIGKILL while mining, many times: consistent restart, no confirmed record lost', async (t) => {
  const dir = tmpDir(t);
  const confirmed: string[] = [];
  let lastHeight = 0;
  const rounds = 6;
  for (let round = 0; round < rounds; round++) {
    const n = await startNode(t, { datadir: dir, args: ['--mine'] });
    const s0 = await getJson<{ height: number; tip: string }>(`${n.api}/api/status`);
    t.ok(s0.body.height >= lastHeight, `round ${round}: restarted at ${s0.body.height}, not below ${lastHeight}`);
    for (const id of confirmed) {
      const r = await getJson<{ confirmed: boolean }>(`${n.api}/api/records/${id}`);
      if (r.status !== 200 || !r.body.confirmed) t.fail(`round ${round}: confirmed record ${id} lost`);
    }
    // Submit a few records and wait for one to be confirmed.
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) {
      const k = newKey();
      const rec = signRecord<NameCommit>('regtest', k.secret, { kind: Kind.NameCommit, pubkey: k.pub, commitment: randomBytes(32) });
      const r = await postJson(`${n.api}/api/records`, { record: toHex(rec.bytes) });
      t.equal(r.status, 202);
      ids.push(toHex(rec.id));
    }
    for (const id of ids) {
      await waitFor('record confirmed', async () => {
        const r = await getJson<{ confirmed: boolean }>(`${n.api}/api/records/${id}`);
        return r.status === 200 && r.body.confirmed;
      });
      confirmed.push(id);
    }
    // Let it mine a little more, then kill it at an arbitrary moment.
    await new Promise((r) => setTimeout(r, 100 + Math.floor(Math.random() * 400)));
    const s1 = await getJson<{ height: number }>(`${n.api}/api/status`);
    lastHeight = s1.body.height;
    n.child.kill('SIGKILL');
    await n.exited;
  }
  // Finally: the stored state equals the state rebuilt from the stored main chain.
  const stored = await openChain(t, { dir });
  const { chain } = stored;
  t.ok(chain.tip.height >= lastHeight, 'final tip not below the last seen height');
  const fresh = await openChain(t);
  for (let h = 1; h <= chain.tip.height; h++) {
    const bytes = await chain.getBlockBytes(chain.main[h].hex);
    const r = await fresh.chain.processBlock(decodeBlock(bytes as Uint8Array, NETWORKS.regtest.maxBlockBytes));
    if (r.status !== 'connected') t.fail(`replay of block ${h}: ${r.status}`);
  }
  t.same(stateDump(chain), stateDump(fresh.chain), 'stored state equals the state rebuilt from its blocks');
  for (const id of confirmed) t.ok(await chain.locateRecord(id), `record ${id.slice(0, 8)} still confirmed`);
});

t.test('records a node accepted stay pending across a SIGKILL and a restart; mined ones do not come back', async (t) => {
  const dir = tmpDir(t);
  const node = await startNode(t, { datadir: dir, args: ['--api-port', '0'] });
  const ids: string[] = [];
  for (let i = 0; i < 40; i++) {
    const k = newKey();
    ids.push(await node.submit(signRecord<NameCommit>('regtest', k.secret, { kind: Kind.NameCommit, pubkey: k.pub, commitment: randomBytes(32) })));
  }
  // Every 202 came after the record was on disk: kill at once, no chance to save anything more.
  await node.kill();
  const again = await startNode(t, { datadir: dir, args: ['--api-port', '0'] });
  const pending = (await again.get<{ records: Array<{ id: string }>; total: number }>('/api/pending?limit=1000')).body;
  t.equal(pending.total, 40, 'all 40 accepted records are pending after the restart');
  t.same(pending.records.map((r) => r.id).sort(), [...ids].sort());
  // Mined, they leave the kept pool: a clean restart shows none pending.
  await again.mine(1);
  for (const id of ids) t.equal((await again.record(id))?.confirmed, true, `record ${id.slice(0, 8)} mined`);
  await again.stop();
  const third = await startNode(t, { datadir: dir, args: ['--api-port', '0'] });
  t.equal((await third.status()).pending, 0, 'nothing mined comes back as pending');
  await third.stop();
});
