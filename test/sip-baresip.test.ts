// baresip, a standard SIP phone, registering to a `dots node` with digest authentication: the
// node pings it, its binding goes online on the chain, and when the phone is killed (it stops
// answering) or quits (it unregisters) the binding goes offline.
//
// baresip opens DNS and RTP sockets on every interface, so the whole test runs in a network
// namespace of its own (unshare -n, loopback only): the file re-runs itself there.
import t from 'tap';
import { join } from 'node:path';
import { runDots, startNode, getJson, postJson } from './util/proc.ts';
import { tmpDir } from './util/tmp.ts';
import { waitFor } from './util/wait.ts';
import { inNetworkNamespace, startBaresip } from './phones.ts';
import { bindingAt, mineUntil, type Binding } from './util/names.ts';

const DOMAIN = 'bare.test';

inNetworkNamespace({ file: import.meta.url, title: 'baresip registers to a node (in a network namespace)', needs: ['baresip'], install: 'baresip' }, () => {
  t.test('baresip: registered, verified, online; killed or quit: offline', async (t) => {
    const dir = tmpDir(t);
    const datadir = join(dir, 'node');
    for (const u of ['alice', 'bob']) t.equal((await runDots(['user', 'add', u, '--password', `${u}-pw`, '--datadir', datadir, '--domain', DOMAIN])).code, 0);
    const node = await startNode(t, { datadir, args: ['--domain', DOMAIN, '--sip-keepalive', '1'] });
    const api = node.api;
    const port = node.sipPort;
    const binding = (user: string): Promise<Binding | null> => bindingAt(node, `sip:${user}@${DOMAIN}`);
    // names claimed: commitments, then reveals
    await mineUntil(() => postJson(`${api}/api/dev/mine`, { count: 1 }), 'names claimed', async () => {
      const n = await getJson<{ owner: string | null }>(`${api}/api/names/${encodeURIComponent(`sip:bob@${DOMAIN}`)}`);
      return n.status === 200 && n.body.owner !== null;
    }, { timeoutMs: 20_000 });

    const alice = startBaresip(t, dir, { user: 'alice', domain: DOMAIN, password: 'alice-pw', nodePort: port, sipPort: 20_000, seconds: 30 });
    await waitFor('alice registered', async () => /alice@bare\.test: \{0\/UDP\/v4\} 200 OK/.test(alice.out()), 8000);
    const online = await waitFor('alice online on the chain (pending)', async () => {
      const b = await binding('alice');
      return b?.status === 'online' ? b : undefined;
    }, 8000);
    t.equal(online.confirmed, false, 'pending at once');
    await postJson(`${api}/api/dev/mine`, { count: 1 });
    await waitFor('alice online confirmed', async () => (await binding('alice'))?.confirmed === true);
    // baresip is the only phone so far: every ping was to it, and a ping not failed was answered
    const metrics = await (await fetch(`${api}/metrics`)).text();
    const pings = (result: string): number => Number(new RegExp(`^dots_sip_keepalives_total\\{result="${result}"\\} (\\d+)`, 'm').exec(metrics)?.[1] ?? NaN);
    t.ok(pings('sent') >= 1 && pings('sent') > pings('failed'), `baresip answered the OPTIONS pings (${pings('sent')} sent, ${pings('failed')} failed); its binding is online and confirmed`);

    // killed: no unregistration, it just stops answering
    alice.child.kill('SIGKILL');
    const off = await waitFor('alice offline after failed pings', async () => {
      const b = await binding('alice');
      return b?.status === 'offline' ? b : undefined;
    }, 15_000, 200);
    t.ok(off.seq > online.seq, 'offline written with a higher sequence');

    // bob quits by itself after a few seconds: it unregisters, the binding turns offline
    const bob = startBaresip(t, dir, { user: 'bob', domain: DOMAIN, password: 'bob-pw', nodePort: port, sipPort: 20_002, seconds: 5 });
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
});
