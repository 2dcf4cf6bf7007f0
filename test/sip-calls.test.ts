// Calls, messages and presence across two nodes that know each other only through the chain and
// the peer network. Node A serves a.test, node B serves b.test; SIPp is the caller at B and the
// callee registered at A. B reads from the chain (tip plus pending) that A serves the callee and
// forwards there; A forwards to the phone. Covered: a call completes (INVITE, 200, ACK, BYE along
// both nodes' Record-Route) and B pays A for it by a receipt they countersigned; an
// unknown name is 404; a ringing call is CANCELled (487); MESSAGE reaches the phone with its body
// untouched; a SUBSCRIBE at B to a user of A gets NOTIFY when the user registers and unregisters;
// an offline user is 480; and with node A down the caller gets 480 within seconds.
import t from 'tap';
import { spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Harness, converged, has, runDots, type NodeProc } from './util/proc.ts';
import { freeUdpPort } from './util/ports.ts';
import { tmpDir, type Teardown } from './util/tmp.ts';
import { waitFor } from './util/wait.ts';
import { TestPhone } from './sip-client.ts';
import { getHeader } from '../sip/message.ts';
import { bindingAt, mineUntil } from './util/names.ts';

const FIX = fileURLToPath(new URL('./fixtures/sipp/', import.meta.url));
const DAVE_NUMBER = '+15551230000';
const HAVE_SIPP = has('sipp');

interface Sipp {
  done: Promise<{ code: number | null; out: string }>;
  stop(): void;
}

function sipp(args: string[]): Sipp {
  const c = spawn('sipp', [...args, '-i', '127.0.0.1', '-nostdin', '-max_recv_loops', '1000'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  c.stdout.on('data', (d: Buffer) => (out = (out + d.toString()).slice(-4000)));
  c.stderr.on('data', (d: Buffer) => (out = (out + d.toString()).slice(-4000)));
  return {
    done: new Promise((resolve) => c.on('exit', (code) => resolve({ code, out }))),
    stop: () => {
      if (c.exitCode === null) c.kill('SIGKILL');
    },
  };
}

/** A SIPp caller at `node` dialling user@domain as bob@b.test. */
function caller(t: Teardown, node: NodeProc, scenario: string, user: string, extra: string[] = []): Sipp {
  const s = sipp([`127.0.0.1:${node.sipPort}`, '-sf', scenario, '-s', user, '-key', 'domain', 'a.test', '-key', 'caller', 'bob', '-key', 'caller_domain', 'b.test', '-p', '0', '-m', '1', '-timeout', '40', '-timeout_error', ...extra]);
  t.teardown(() => s.stop());
  return s;
}

/**
 * A SIPp callee listening on `port`, answering the node's OPTIONS pings (-aa). SIPp counts each
 * ping as a call of its own, so it runs without a call limit until the test stops it; the
 * caller's scenario completing (the 200 to INVITE and to BYE come from here) is the proof.
 */
function callee(t: Teardown, scenario: string, port: number): Sipp {
  const s = sipp(['-sf', join(FIX, scenario), '-p', String(port), '-aa']);
  t.teardown(() => s.stop());
  return s;
}

function rejectScenario(dir: string, status: number): string {
  const f = join(dir, `uac-${status}.xml`);
  writeFileSync(f, readFileSync(join(FIX, 'uac-reject.xml'), 'utf8').replace('response="STATUS"', `response="${status}"`));
  return f;
}

t.test('calls, messages and presence across two nodes', { skip: HAVE_SIPP ? false : 'sipp is not installed (apt-get install sip-tester)' }, async (t) => {
  const dir = tmpDir(t);
  const h = new Harness(t);
  // dave's account at A also answers to a number his own wallet claims and delegates to A
  const datadirA = join(dir, 'node-A');
  const added = await runDots(['user', 'add', 'dave', '--password', 'dave-pw', '--alias', DAVE_NUMBER, '--datadir', datadirA, '--domain', 'a.test']);
  t.equal(added.code, 0, added.stderr);
  const a = await h.start('A', { datadir: datadirA, args: ['--domain', 'a.test', '--open-registration', '--sip-keepalive', '2'] });
  const b = await h.start('B', { bootstrap: [a.p2p], args: ['--domain', 'b.test', '--open-registration'] });
  t.ok(a.sipPort > 0 && b.sipPort > 0, 'both nodes listen for SIP');

  // the callees at A: SIPp UASes registered by a phone on their behalf, and a phone for MESSAGE
  const alicePort = await freeUdpPort();
  const carolPort = await freeUdpPort();
  const aliceUas = callee(t, 'uas-call.xml', alicePort);
  const carolUas = callee(t, 'uas-ring.xml', carolPort);
  const regA = await new TestPhone({ host: '127.0.0.1', port: a.sipPort }).open();
  const dave = await new TestPhone({ host: '127.0.0.1', port: a.sipPort }).open();
  const bob = await new TestPhone({ host: '127.0.0.1', port: b.sipPort }).open();
  t.teardown(() => {
    regA.close();
    dave.close();
    bob.close();
  });
  for (const [user, contact] of [
    ['alice', `sip:alice@127.0.0.1:${alicePort}`],
    ['carol', `sip:carol@127.0.0.1:${carolPort}`],
  ]) {
    const r = await regA.register({ user, domain: 'a.test', contact, expires: 600, callId: `reg-${user}` });
    t.equal(r.status, 200, `${user} registered at A`);
  }
  t.equal((await dave.register({ user: 'dave', domain: 'a.test', expires: 600 })).status, 200, 'dave registered at A');

  // A claims the names and binds them; B learns it from the chain
  const names = ['alice', 'carol', 'dave'].map((u) => `sip:${u}@a.test`);
  await mineUntil(() => a.mine(1), 'B sees alice, carol and dave online at A', async () => {
    const bs = await Promise.all(names.map((n) => bindingAt(b, n)));
    return bs.every((x) => x?.status === 'online') ? bs : undefined;
  }, { timeoutMs: 60_000, pauseMs: 200 });
  const aId = (await bindingAt(b, names[0]))?.node as string;
  t.match(aId, /^[0-9a-f]{40}$/, 'the chain names node A');
  // B pays for the calls it originates: it mines a block for the coins
  await b.mine(1);
  await converged([a, b]);

  await t.test('a call from B to alice at A completes through both nodes', async (t) => {
    const c = caller(t, b, join(FIX, 'uac-call.xml'), 'alice', ['-d', '2000']);
    const uac = await c.done;
    t.equal(uac.code, 0, `INVITE, 200 from the callee, ACK, BYE, 200 from the callee${uac.code === 0 ? '' : '\n' + uac.out}`);
  });

  await t.test('B pays A for the call by a countersigned receipt', async (t) => {
    type Pending = { records: Array<{ id: string; kind: string; body?: Record<string, unknown> }> };
    const receipt = await waitFor('the receipt pending at A', async () => {
      const r = await a.get<Pending>('/api/pending');
      return r.body.records.find((x) => x.kind === 'call-receipt');
    }, 30_000).catch((e: unknown) => {
      throw new Error(`${(e as Error).message}\n--- B\n${b.log(30)}\n--- A\n${a.log(30)}`);
    });
    const nodes = (await b.get<{ nodes: Array<{ id: string }> }>('/api/nodes')).body.nodes.map((n) => n.id);
    const bId = nodes.find((id) => id !== aId) as string;
    const before = (await a.get<{ earned: { balance: number; mined: number } }>(`/api/nodes/${bId}`)).body.earned;
    t.equal(before.balance, before.mined, 'B holds what it mined before the call');
    await a.mine(1);
    const rec = await waitFor('the receipt confirmed at B', async () => {
      const r = await b.get<{ confirmed: boolean; record: { answered: number; ended: number } }>(`/api/records/${receipt.id}`);
      return r.status === 200 && r.body.confirmed ? r.body : undefined;
    });
    const seconds = rec.record.ended - rec.record.answered;
    t.ok(seconds >= 1 && seconds <= 4, `the receipt covers the call (${seconds} s)`);
    const after = (await b.get<{ earned: { balance: number } }>(`/api/nodes/${bId}`)).body.earned.balance;
    t.equal(before.balance - after, seconds * 1000, 'B (the originating node) paid 1,000 units per second of the call (regtest asks no fee)');
    // A mines too: what it holds beyond its coinbases is what the call paid it
    const aEarned = (await b.get<{ earned: { balance: number; mined: number } }>(`/api/nodes/${aId}`)).body.earned;
    t.equal(aEarned.balance - aEarned.mined, seconds * 1000, 'A (the terminating node) was paid the same for the call');
  });

  await t.test('an unknown name is 404 from B at once', async (t) => {
    const c = caller(t, b, rejectScenario(dir, 404), 'nobody');
    const r = await c.done;
    t.equal(r.code, 0, `404 Not Found${r.code === 0 ? '' : '\n' + r.out}`);
  });

  await t.test('a ringing call across the nodes is cancelled', async (t) => {
    const c = caller(t, b, join(FIX, 'uac-cancel.xml'), 'carol');
    const uac = await c.done;
    t.equal(uac.code, 0, `180 from the callee, CANCEL, 200, 487 from the callee, ACK${uac.code === 0 ? '' : '\n' + uac.out}`);
    carolUas.stop();
  });

  await t.test('a MESSAGE reaches dave at A with its body untouched', async (t) => {
    const body = '-----BEGIN PGP MESSAGE-----\r\nhQEMA0xyz\r\n=abcd\r\n-----END PGP MESSAGE-----\r\n';
    const sent = bob.request('MESSAGE', 'sip:dave@a.test', ['From: <sip:bob@b.test>;tag=m1', 'Max-Forwards: 70', 'Content-Type: application/pgp-encrypted'], body);
    const got = await dave.incoming('MESSAGE');
    t.equal(got.body.toString('latin1'), body, 'the body arrived byte for byte');
    t.equal(getHeader(got, 'content-type'), 'application/pgp-encrypted');
    t.equal(got.uri, `sip:dave@127.0.0.1:${dave.port}`, 'retargeted to the registered contact');
    dave.answer(got, 200);
    t.equal((await sent).status, 200, 'the sender gets the 200');
  });

  await t.test("a number dave's wallet claimed and delegated to A reaches him from B (tel: URI)", async (t) => {
    const wallet = join(dir, 'dave.key');
    const w = ['--wallet', wallet, '--network', 'regtest', '--api', a.api];
    const env = { DOTS_PASSPHRASE: 'dave wallet passphrase' };
    t.equal((await runDots(['wallet', 'new', ...w], 20_000, env)).code, 0, 'dots wallet new');
    let r = await runDots(['name', 'claim', DAVE_NUMBER, '--no-wait', ...w], 20_000, env);
    t.equal(r.code, 0, r.stderr);
    await a.mine(2);
    r = await runDots(['name', 'claim', DAVE_NUMBER, ...w], 20_000, env);
    t.equal(r.code, 0, `dots name claim (reveal): ${r.stderr}`);
    await a.mine(1);
    r = await runDots(['name', 'delegate', DAVE_NUMBER, aId, ...w], 20_000, env);
    t.equal(r.code, 0, `dots name delegate: ${r.stderr}`);
    await mineUntil(() => a.mine(1), 'B sees the number bound to A, online', async () => (await bindingAt(b, DAVE_NUMBER))?.status === 'online', { timeoutMs: 30_000 });
    t.equal((await bindingAt(b, DAVE_NUMBER))?.node, aId, 'node A binds the delegated number for dave');
    const sent = bob.request('MESSAGE', `tel:${DAVE_NUMBER}`, ['From: <sip:bob@b.test>;tag=m2', 'Max-Forwards: 70', 'Content-Type: text/plain'], 'by number');
    const got = await dave.incoming('MESSAGE');
    t.equal(got.body.toString('utf8'), 'by number', 'B routed the number to A, A to dave');
    t.equal(got.uri, `sip:dave@127.0.0.1:${dave.port}`, 'retargeted to his registered contact');
    dave.answer(got, 200);
    t.equal((await sent).status, 200);
  });

  await t.test("the nodes' SIP metrics count what they routed", async (t) => {
    const text = async (n: NodeProc): Promise<string> => (await fetch(`${n.api}/metrics`)).text();
    const [ma, mb] = await Promise.all([text(a), text(b)]);
    t.match(mb, /^dots_sip_calls_total\{result="answered"\} [1-9]/m, 'B: the call answered');
    t.match(mb, /^dots_sip_calls_total\{result="not-found"\} [1-9]/m, 'B: the 404');
    t.match(mb, /^dots_sip_calls_total\{result="cancelled"\} [1-9]/m, 'B: the cancelled call');
    t.match(mb, /^dots_sip_messages_total\{result="delivered"\} [1-9]/m, 'B: the MESSAGE');
    t.match(ma, /^dots_sip_registrations 3$/m, 'A: three contacts registered');
    t.match(ma, /^dots_sip_datagrams_total\{result="received"\} [1-9]/m, 'A: the datagrams it read');
    t.match(ma, /^dots_sip_datagrams_total\{result="sent"\} [1-9]/m, 'A: and sent');
    t.match(ma, /^dots_sip_datagrams_total\{result="shed"\} 0$/m, 'A: none shed, nobody flooded it');
    t.match(ma, /^dots_sip_register_requests_total\{result="ok"\} [3-9]/m, 'A: the REGISTERs');
    t.match(ma, /^dots_sip_keepalives_total\{result="sent"\} [1-9]/m, 'A: its keepalive pings');
    t.match(ma, /^dots_sip_active_calls 0$/m, 'A: no call in progress');
  });

  await t.test('a SUBSCRIBE at B to alice gets NOTIFY when she unregisters and registers', async (t) => {
    const callId = 'sub-' + Date.now();
    const sub = bob.request('SUBSCRIBE', 'sip:alice@a.test', ['From: <sip:bob@b.test>;tag=s1', `Call-ID: ${callId}`, 'Max-Forwards: 70', 'Event: presence', 'Accept: application/pidf+xml', 'Expires: 600', `Contact: <sip:bob@127.0.0.1:${bob.port}>`]);
    t.equal((await sub).status, 200, 'subscribed at B');
    const basic = async (): Promise<string> => {
      const n = await bob.incoming('NOTIFY', 15_000);
      bob.answer(n, 200);
      t.equal(getHeader(n, 'call-id'), callId);
      return /<basic>(\w+)<\/basic>/.exec(n.body.toString('utf8'))?.[1] ?? '';
    };
    t.equal(await basic(), 'open', 'the first NOTIFY: alice is online');
    // alice's phone unregisters at A: the offline binding is pending at A, gossiped to B
    t.equal((await regA.register({ user: 'alice', domain: 'a.test', contact: `sip:alice@127.0.0.1:${alicePort}`, expires: 0, callId: 'reg-alice' })).status, 200);
    t.equal(await basic(), 'closed', 'NOTIFY at B: alice went offline at A');

    const c = caller(t, b, rejectScenario(dir, 480), 'alice');
    const r = await c.done;
    t.equal(r.code, 0, `an offline user is 480 from B${r.code === 0 ? '' : '\n' + r.out}`);

    t.equal((await regA.register({ user: 'alice', domain: 'a.test', contact: `sip:alice@127.0.0.1:${alicePort}`, expires: 600, callId: 'reg-alice' })).status, 200);
    t.equal(await basic(), 'open', 'NOTIFY at B: alice is back online');
    aliceUas.stop();
  });

  await t.test('with node A down, a call to alice fails quickly with 480', async (t) => {
    await a.stop();
    const t0 = Date.now();
    const c = caller(t, b, rejectScenario(dir, 480), 'alice');
    const r = await c.done;
    t.equal(r.code, 0, `480 Temporarily Unavailable${r.code === 0 ? '' : '\n' + r.out}`);
    t.comment(`answered after ${Date.now() - t0} ms`);
  });
});
