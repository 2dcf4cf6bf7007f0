// baresip, a standard SIP phone, registering to a `dots node` with digest authentication: the
// node pings it, its binding goes online on the chain, and when the phone is killed (it stops
// answering) or quits (it unregisters) the binding goes offline.
//
// baresip opens DNS and RTP sockets on every interface, so the whole test runs in a network
// namespace of its own (unshare -n, loopback only): the file re-runs itself there.
import t from 'tap';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { runDots, startNode, getJson, postJson, waitFor } from './proc.ts';
import { tmpDir } from './helpers.ts';

const has = (cmd: string): boolean => spawnSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' }).status === 0;
const DOMAIN = 'bare.test';

if (process.env.DOTS_IN_NETNS !== '1') {
  const missing = ['baresip', 'unshare', 'ip'].filter((c) => !has(c));
  const canUnshare = missing.length === 0 && spawnSync('unshare', ['-n', 'true'], { stdio: 'ignore' }).status === 0;
  const skip = missing.length > 0 ? `${missing.join(', ')} not installed (apt-get install baresip)` : !canUnshare ? 'cannot create a network namespace (needs root)' : false;
  t.test('baresip registers to a node (in a network namespace)', { skip }, async (t) => {
    const self = fileURLToPath(import.meta.url);
    await t.spawn('unshare', ['-n', '--', 'sh', '-c', 'ip link set lo up && exec "$@"', 'sh', process.execPath, ...process.execArgv, self], {
      env: { ...process.env, DOTS_IN_NETNS: '1' },
    });
  });
} else {
  t.test('baresip: registered, verified, online; killed or quit: offline', async (t) => {
    const dir = tmpDir(t);
    const datadir = join(dir, 'node');
    for (const u of ['alice', 'bob']) t.equal((await runDots(['user', 'add', u, '--password', `${u}-pw`, '--datadir', datadir, '--domain', DOMAIN])).code, 0);
    const node = await startNode(t, ['--network', 'regtest', '--datadir', datadir, '--domain', DOMAIN, '--sip-keepalive', '1']);
    const api = node.api;
    const port = Number(/sip:\s+sip:127\.0\.0\.1:(\d+)/.exec(node.stdout.join(''))?.[1]);
    const binding = async (user: string): Promise<{ status: string; confirmed: boolean; seq: number } | null | undefined> =>
      (await getJson<{ binding: { status: string; confirmed: boolean; seq: number } | null }>(`${api}/api/names/${encodeURIComponent(`sip:${user}@${DOMAIN}`)}`)).body.binding;
    // names claimed: commitments, then reveals
    await waitFor('names claimed', async () => {
      const n = await getJson<{ owner: string | null }>(`${api}/api/names/${encodeURIComponent(`sip:bob@${DOMAIN}`)}`);
      if (n.status === 200 && n.body.owner !== null) return true;
      await postJson(`${api}/api/dev/mine`, { count: 1 });
      await new Promise((r) => setTimeout(r, 150));
      return false;
    });

    const alice = startPhone(t, dir, 'alice', port, 20_000, 30);
    await waitFor('alice registered', async () => /alice@bare\.test: \{0\/UDP\/v4\} 200 OK/.test(alice.out()), 8000);
    const online = await waitFor('alice online on the chain (pending)', async () => {
      const b = await binding('alice');
      return b?.status === 'online' ? b : undefined;
    }, 8000);
    t.equal(online.confirmed, false, 'pending at once');
    await postJson(`${api}/api/dev/mine`, { count: 1 });
    await waitFor('alice online confirmed', async () => (await binding('alice'))?.confirmed === true);
    t.pass('baresip answered the OPTIONS pings; its binding is online and confirmed');

    // killed: no unregistration, it just stops answering
    alice.child.kill('SIGKILL');
    const off = await waitFor('alice offline after failed pings', async () => {
      const b = await binding('alice');
      return b?.status === 'offline' ? b : undefined;
    }, 15_000, 200);
    t.ok(off.seq > online.seq, 'offline written with a higher sequence');

    // bob quits by itself after a few seconds: it unregisters, the binding turns offline
    const bob = startPhone(t, dir, 'bob', port, 20_002, 5);
    await waitFor('bob online', async () => (await binding('bob'))?.status === 'online', 8000);
    await new Promise<void>((r) => bob.child.once('exit', () => r()));
    t.match(bob.out(), /bob@bare\.test: \{0\/UDP\/v4\} 200 OK/, 'bob registered');
    await waitFor('bob offline after unregistering', async () => (await binding('bob'))?.status === 'offline', 6000);
    await postJson(`${api}/api/dev/mine`, { count: 1 });
    await waitFor('both offline confirmed', async () => {
      const [a, b] = await Promise.all([binding('alice'), binding('bob')]);
      return a?.confirmed === true && b?.confirmed === true && a.status === 'offline' && b.status === 'offline';
    });
    t.pass('offline confirmed in a block');
  });
}

/** A baresip phone (config as in phones/README.md) registering USER to the node. */
function startPhone(t: { teardown(fn: () => void): void }, dir: string, user: string, sipPort: number, localPort: number, seconds: number): { child: ChildProcess; out: () => string } {
  const cfg = join(dir, `baresip-${user}`);
  mkdirSync(cfg, { recursive: true });
  writeFileSync(
    join(cfg, 'config'),
    [
      'poll_method epoll',
      `sip_listen 127.0.0.1:${localPort}`,
      'audio_source ausine,440',
      `audio_player aubridge,${user}`,
      'module_path /usr/lib/baresip/modules',
      'module g711.so',
      'module opus.so',
      'module ausine.so',
      'module aubridge.so',
      'module srtp.so',
      'module account.so',
      'module uuid.so',
      'module_app menu.so',
      '',
    ].join('\n'),
  );
  writeFileSync(
    join(cfg, 'accounts'),
    `<sip:${user}@${DOMAIN};transport=udp>;auth_pass=${user}-pw;outbound="sip:127.0.0.1:${sipPort};transport=udp";regint=600;answermode=auto;mediaenc=srtp-mand;audio_codecs=opus/48000/2\n`,
  );
  const child = spawn('baresip', ['-f', cfg, '-n', '127.0.0.1', '-t', String(seconds)], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout?.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (out += d.toString()));
  t.teardown(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  return { child, out: () => out };
}
