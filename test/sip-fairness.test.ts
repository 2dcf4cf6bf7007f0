// Limits a stranger cannot fill, each an attack that must fail against a real SIP stack on
// loopback: a one-address flood of datagrams from a process of its own while a phone at another
// address registers; the ban list; the byte budgets (completed transactions, incomplete TCP
// messages); the fair shares of forwarded requests in progress and of subscriptions.
import t from 'tap';
import type { Test } from 'tap';
import { connect, type Socket } from 'node:net';
import { spawn } from 'node:child_process';
import type { SipServiceOptions } from '../sip/service.ts';
import { credentialsFor } from '../sip/digest.ts';
import { getHeader, parseMessage, type SipRequest, type SipResponse } from '../sip/message.ts';
import { FairQueue, Pushed } from '../sip/fair-queue.ts';
import { FairShare } from '../sip/fair-share.ts';
import { SipTransport, banList, BanListError } from '../sip/transport.ts';
import { TransactionLayer } from '../sip/transaction.ts';
import { buildResponse } from '../sip/serialize.ts';
import { TestPhone, sipNode } from './sip-client.ts';
import { optionsTemplate, udpFlood } from './util/flood.ts';
import { sleep, until } from './util/wait.ts';
import { runDots } from './util/proc.ts';

const DOMAIN = 'fair.test';
const USERS = new Map([
  ['alice', credentialsFor('alice', DOMAIN, 'wonderland')],
  ['bob', credentialsFor('bob', DOMAIN, 'builder')],
  ['carol', credentialsFor('carol', DOMAIN, 'singer')],
]);

function node(t: Test, extra: Partial<SipServiceOptions> = {}): ReturnType<typeof sipNode> {
  return sipNode(t, DOMAIN, USERS, { ...extra, proxy: { noAnswerMs: 30_000, ...extra.proxy } });
}

/** The last registration's attempts (1: answered to its first sending). */
let attempts = 0;

/**
 * REGISTER with digest, sent again when no answer comes within 3 s, up to four times (a phone
 * retransmits sooner, on Timer E; the tests only need to know whether it had to).
 */
async function register(p: TestPhone, user: string, password: string): Promise<SipResponse | null> {
  for (attempts = 1; attempts <= 4; attempts++) {
    try {
      return await p.registerWithAuth({ user, domain: DOMAIN, password, expires: 600 });
    } catch {
      // lost on the way (or its answer was): send it again
    }
  }
  return null;
}

t.test('FairQueue: sources take turns; a source over its share loses datagrams, a stream is paused and resumed', async (t) => {
  const order: string[] = [];
  const q = new FairQueue<string>((item, source) => order.push(source + item), { perSource: 4 });
  for (let i = 0; i < 6; i++) q.push('F', String(i), 10, false);
  q.push('L', '0', 10, false);
  t.equal(q.stats.dropped, 2, 'the flooding source keeps four waiting, its other two are dropped as they arrive');
  t.equal(q.waiting('F'), 4);
  await sleep(5);
  t.same(order.slice(0, 2), ['F0', 'L0'], "the other source's message is handled at its first turn, not after the flood's");
  t.same(order, ['F0', 'L0', 'F1', 'F2', 'F3']);
  let resumed = 0;
  const results: Pushed[] = [];
  for (let i = 0; i < 6; i++) results.push(q.push('S', String(i), 10, true, () => resumed++));
  t.same(results.slice(0, 4), [Pushed.Queued, Pushed.Queued, Pushed.Queued, Pushed.Queued]);
  t.equal(results[4], Pushed.Full, 'a stream over its share is queued but told to pause');
  t.equal(q.waiting('S'), 6, 'nothing of a stream is dropped');
  await until('the stream is resumed once its source drained', () => resumed > 0);
  const budget = new FairQueue<string>(() => undefined, { perSource: 100, maxBytes: 100 });
  t.equal(budget.push('A', 'x', 90, false), Pushed.Queued);
  t.equal(budget.push('A', 'y', 90, false), Pushed.Dropped, 'past the byte budget a source with something waiting loses the datagram');
  t.equal(budget.push('B', 'z', 90, false), Pushed.Queued, 'a source with nothing waiting still gets one in');
  budget.stop();
  q.stop();
});

t.test('FairQueue: what a turn made goes out at the end of that turn, eight messages a turn', async (t) => {
  const log: string[] = [];
  const q = new FairQueue<string>((item) => log.push(item), {}, () => log.push('|'));
  for (let i = 0; i < 10; i++) q.push(`S${i % 3}`, String(i), 10, false);
  await until('every message handled', () => log.filter((x) => x !== '|').length === 10);
  t.same(log.join(''), '01234567|89|', 'round robin over the three sources, eight a turn; the hook after each turn, before the next starts');
  q.stop();
});

t.test('FairShare: one source may hold no more than is left free', async (t) => {
  const s = new FairShare(12);
  let flood = 0;
  while (s.take('F')) flood++;
  t.equal(flood, 6, 'alone, a source takes half');
  let other = 0;
  while (s.take('G')) other++;
  t.equal(other, 3, 'a second takes half of what is left');
  t.ok(s.take('H'), 'a newcomer still finds room');
  s.release('F');
  t.equal(s.of('F'), 5);
  t.equal(s.size, 9);
});

t.test('one address flooding the node with datagrams does not keep a phone at another address from registering', async (t) => {
  const { svc, phone } = await node(t);
  const alice = await phone('udp', '127.0.0.3');
  t.equal((await register(alice, 'alice', 'wonderland'))?.status, 200, 'alice registers before the flood');
  const flood = udpFlood({ host: '127.0.0.1', port: svc.port, from: '127.0.0.2', rate: 60_000, seconds: 6, template: optionsTemplate(`sip:127.0.0.1:${svc.port}`, '127.0.0.2') });
  t.teardown(() => flood.stop());
  await until('the flood arrives', () => svc.stats.requests > 2000, 5000);
  const statuses: Array<number | undefined> = [];
  const times: number[] = [];
  const tries: number[] = [];
  for (let i = 0; i < 5; i++) {
    const t0 = performance.now();
    statuses.push((await register(alice, 'alice', 'wonderland'))?.status);
    tries.push(attempts);
    times.push(Math.round(performance.now() - t0));
    await sleep(300);
  }
  const requestsDuring = svc.stats.requests;
  flood.stop();
  const sent = await flood.done;
  t.same(statuses, [200, 200, 200, 200, 200], 'every registration during the flood succeeds');
  t.comment(`flood: ${sent} datagrams sent, ${requestsDuring} requests handled, ${svc.transport.queue.stats.dropped} dropped in turn; registrations took ${times.join(', ')} ms, sent ${tries.join(', ')} times`);
  t.ok(svc.transport.queue.stats.dropped > 0 || requestsDuring >= sent * 0.9, 'what the node could not handle of the flood was dropped before parsing, not queued');
});

t.test('the ban list: a banned address is not answered over UDP and its connections are refused; others are', async (t) => {
  t.throws(() => banList(['10.0.0.0/33']), BanListError);
  t.throws(() => banList(['example.org']), BanListError);
  t.doesNotThrow(() => banList(['192.0.2.7', '198.51.100.0/24', '2001:db8::/32']));
  const { svc, phone } = await node(t, { transport: { banned: ['127.0.0.9', '127.0.1.0/24'] } });
  const banned = await phone('udp', '127.0.0.9');
  await t.rejects(banned.request('OPTIONS', `sip:127.0.0.1:${svc.port}`), /timed out/, 'a banned address gets no answer');
  const inBlock = await phone('udp', '127.0.1.7');
  await t.rejects(inBlock.request('OPTIONS', `sip:127.0.0.1:${svc.port}`), /timed out/, 'nor does one in a banned block');
  t.ok(svc.transport.stats.banned >= 2);
  const closed = await new Promise<boolean>((resolve) => {
    const c = connect({ host: '127.0.0.1', port: svc.port, localAddress: '127.0.0.9' });
    c.on('close', () => resolve(true));
    c.on('error', () => undefined);
    c.on('connect', () => c.write('OPTIONS sip:x SIP/2.0\r\n'));
    setTimeout(() => resolve(false), 3000);
  });
  t.ok(closed, 'a TCP connection from a banned address is closed at once');
  const ok = await phone('udp', '127.0.0.8');
  t.equal((await ok.request('OPTIONS', `sip:127.0.0.1:${svc.port}`)).status, 200, 'an address off the list is answered');
  const bad = await runDots(['node', '--sip-ban', '10.1.2.3/40']);
  t.equal(bad.code, 2);
  t.match(bad.stderr.trim(), /^dots: --sip-ban: "10\.1\.2\.3\/40" is not an IP address or CIDR block/, 'a bad --sip-ban is one line that says what to fix');
  t.notMatch(bad.stderr, /\n\s+at /, 'no stack trace');
});

t.test('completed transactions are bounded in bytes: answers echoing 30 KB Vias cannot grow the store past its budget', async (t) => {
  const transport = new SipTransport({ host: '127.0.0.1', port: 0 }, { message: () => undefined, malformed: () => undefined });
  await transport.start();
  const layer = new TransactionLayer(transport, { maxCompletedBytes: 1 << 20, timers: { t1: 2000, t2: 4000, t4: 5000 } });
  t.teardown(async () => {
    layer.stop();
    await transport.stop();
  });
  const flow = { proto: 'udp' as const, address: '127.0.0.4', port: 5999, conn: 0 };
  const big = optionsTemplate('sip:bob@fair.test', '127.0.0.4', 30_000);
  const request = (i: number): SipRequest => {
    const r = parseMessage(Buffer.from(big.replaceAll('@N@', String(i).padStart(10, '0')), 'latin1'));
    if (!r.ok || r.message.kind !== 'request') throw new Error('the template does not parse');
    return r.message;
  };
  // answered with a 200 and kept (a refusal, or an OPTIONS to the node itself, is not kept at all)
  for (let i = 0; i < 120; i++) {
    const inc = layer.receiveRequest(request(i), flow);
    inc?.tx?.respond(buildResponse(inc.req, 200, 'OK'));
  }
  t.ok(layer.completedBytes <= 1 << 20, `the store keeps ${layer.completedBytes} bytes, within its 1 MB budget`);
  t.ok(layer.stats.evicted >= 80, `the oldest were let go (${layer.stats.evicted})`);
  t.equal(layer.receiveRequest(request(119), flow), null, 'the newest is still known: its retransmission is absorbed');
  t.not(layer.receiveRequest(request(0), flow), null, 'the oldest is gone: it would be handled again');
});

t.test('incomplete TCP messages are bounded in bytes: past the budget the connection holding most is closed, a TCP phone still registers', async (t) => {
  const { svc, phone } = await node(t, { transport: { maxBufferedBytes: 200_000 } });
  const open: Socket[] = [];
  t.teardown(() => open.forEach((s) => s.destroy()));
  const closedAt: number[] = [];
  for (let i = 0; i < 5; i++) {
    const s = connect({ host: '127.0.0.1', port: svc.port, localAddress: `127.0.2.${i + 1}` });
    s.on('error', () => undefined);
    s.on('close', () => closedAt.push(i));
    await new Promise<void>((r) => s.once('connect', () => r()));
    // a header never finished: 60 KB of one Via line
    s.write('OPTIONS sip:x SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.0.1;branch=z9hG4bK' + 'v'.repeat(60_000));
    open.push(s);
    await sleep(50);
  }
  await until('connections over the budget are closed', () => closedAt.length >= 2, 5000);
  t.ok(svc.transport.stats.overBudget >= 2, `${svc.transport.stats.overBudget} closed for the byte budget`);
  const tcpPhone = await phone('tcp', '127.0.0.5');
  t.equal((await tcpPhone.registerWithAuth({ user: 'bob', domain: DOMAIN, password: 'builder', expires: 600 })).status, 200, 'a TCP phone registers meanwhile');
});

t.test('forwarded requests in progress: one address flooding calls to a phone that never answers holds only its share; another caller gets through', async (t) => {
  const { svc, phone } = await node(t, { proxy: { maxActive: 12, noAnswerMs: 30_000 } });
  const silent = await phone('udp', '127.0.0.6');
  t.equal((await register(silent, 'carol', 'singer'))?.status, 200);
  const flooder = await phone('udp', '127.0.0.2');
  const answers: number[] = [];
  for (let i = 0; i < 20; i++) void flooder.request('INVITE', `sip:carol@${DOMAIN}`, ['Max-Forwards: 70', `Contact: <sip:x@127.0.0.2:${flooder.port}>`], '').then((r) => answers.push(r.status), () => undefined);
  await until('the flood past its share is refused', () => answers.filter((s) => s === 503).length >= 14, 5000);
  t.equal(svc.proxy.activeCount, 6, 'the flooding address holds six of twelve');
  const caller = await phone('udp', '127.0.0.7');
  const call = caller.request('INVITE', `sip:carol@${DOMAIN}`, ['Max-Forwards: 70', `Contact: <sip:y@127.0.0.7:${caller.port}>`], '');
  const rung = await silent.wait((m) => m.kind === 'request' && m.method === 'INVITE' && (getHeader(m, 'contact') ?? '').includes('127.0.0.7'), 3000);
  silent.answer(rung as SipRequest, 486, 'Busy Here');
  t.equal((await call).status, 486, "another address's call reaches the phone and its answer comes back");
});

t.test('subscriptions: one address holds no more than its share; a watcher at another address still subscribes', async (t) => {
  const { phone } = await node(t, { presence: { maxSubscriptions: 8 } });
  const alice = await phone('udp', '127.0.0.3');
  t.equal((await register(alice, 'alice', 'wonderland'))?.status, 200);
  const bob = await phone('udp', '127.0.0.2');
  t.equal((await register(bob, 'bob', 'builder'))?.status, 200);
  const asBob = `From: <sip:bob@${DOMAIN}>;tag=b${bob.port}`;
  const got: number[] = [];
  for (let i = 0; i < 8; i++) {
    got.push((await bob.request('SUBSCRIBE', `sip:alice@${DOMAIN}`, ['Event: presence', 'Expires: 600', `Contact: <sip:b@127.0.0.2:${bob.port}>`, asBob, `Call-ID: sub${i}`])).status);
  }
  t.same(got, [200, 200, 200, 200, 503, 503, 503, 503], 'bob\'s address holds four of eight, then 503');
  const carol = await phone('udp', '127.0.0.4');
  t.equal((await register(carol, 'carol', 'singer'))?.status, 200);
  const r = await carol.request('SUBSCRIBE', `sip:alice@${DOMAIN}`, ['Event: presence', 'Expires: 600', `Contact: <sip:c@127.0.0.4:${carol.port}>`, `From: <sip:carol@${DOMAIN}>;tag=c${carol.port}`]);
  t.equal(r.status, 200, 'a watcher at another address still subscribes');
});

t.test('a TCP client that exits leaves no connection at the node: whole message, half a message, or a reset', async (t) => {
  const { svc } = await node(t);
  const child = (how: 'whole' | 'half' | 'reset'): Promise<number | null> =>
    new Promise((resolve) => {
      const src = `
        const s = require('node:net').connect(${svc.port}, '127.0.0.1', () => {
          const reg = 'REGISTER sip:${DOMAIN} SIP/2.0\\r\\nVia: SIP/2.0/TCP 127.0.0.1:5;branch=z9hG4bKexit' + process.pid + '\\r\\nMax-Forwards: 70\\r\\nFrom: <sip:alice@${DOMAIN}>;tag=x\\r\\nTo: <sip:alice@${DOMAIN}>\\r\\nCall-ID: exit' + process.pid + '\\r\\nCSeq: 1 REGISTER\\r\\nContact: <sip:alice@127.0.0.1:5;transport=tcp>\\r\\nContent-Length: 0\\r\\n\\r\\n';
          s.write('${how}' === 'half' ? reg.slice(0, 60) : reg, () => {
            if ('${how}' === 'reset') s.resetAndDestroy();
            setTimeout(() => process.exit(0), 100);
          });
        });`;
      const c = spawn(process.execPath, ['-e', src], { stdio: 'ignore' });
      c.on('exit', (code) => resolve(code));
    });
  for (const how of ['whole', 'half', 'reset'] as const) {
    t.equal(await child(how), 0, `the client (${how}) ran and exited`);
    await until(`the node to let go of the connection of a client that exited (${how})`, () => svc.transport.connections === 0, 5000);
  }
  t.equal(svc.transport.connections, 0, 'no connection is left behind');
});

t.test('a refusal keeps no state and is sent once: a forged INVITE is not answered ten times toward its victim', async (t) => {
  const { svc, phone } = await node(t);
  const victim = await phone('udp', '127.0.0.11');
  const branch = 'z9hG4bKforged1';
  const text = [`INVITE sip:nobody@${DOMAIN} SIP/2.0`, `Via: SIP/2.0/UDP 127.0.0.11:${victim.port};branch=${branch}`, 'Max-Forwards: 70', 'From: <sip:x@elsewhere.test>;tag=f1', `To: <sip:nobody@${DOMAIN}>`, 'Call-ID: forged1', 'CSeq: 1 INVITE', 'Content-Length: 0', '', ''].join('\r\n');
  victim.sendRaw(text);
  t.equal((await victim.response(branch)).status, 404, 'the INVITE is refused');
  // with T1 = 100 ms, Timer G would have resent it at 100, 300, 700 and 1,100 ms
  await sleep(1500);
  t.equal(victim.received.filter((m) => m.kind === 'response').length, 0, 'and the refusal is not sent again');
  t.equal(svc.tx.serverCount, 0, 'nothing is kept for it');
  victim.sendRaw(text);
  t.equal((await victim.response(branch)).status, 404, 'a retransmission of the INVITE gets the same answer');
  const sub = await victim.request('SUBSCRIBE', `sip:alice@${DOMAIN}`, ['Event: presence', `Contact: <sip:x@127.0.0.11:${victim.port}>`]);
  t.equal(sub.status, 403, "a stranger's SUBSCRIBE is refused");
  t.equal(svc.tx.serverCount, 0, 'and keeps nothing either');
});

t.test('answers to one connection made in one turn go out in one write, whole and in order', async (t) => {
  const { svc } = await node(t);
  const s = connect({ host: '127.0.0.1', port: svc.port, localAddress: '127.0.0.14' });
  s.on('error', () => undefined);
  t.teardown(() => s.destroy());
  await new Promise<void>((r) => s.once('connect', () => r()));
  let got = '';
  s.on('data', (d: Buffer) => (got += d.toString('latin1')));
  const tpl = optionsTemplate(`sip:127.0.0.1:${svc.port}`, '127.0.0.14').replace('SIP/2.0/UDP', 'SIP/2.0/TCP');
  const before = { ...svc.transport.stats };
  // eight requests in one segment: the fair queue handles them in one turn of eight
  s.write(Array.from({ length: 8 }, (_, i) => tpl.replaceAll('@N@', String(i).padStart(10, '0'))).join(''));
  await until('eight answers', () => (got.match(/^SIP\/2\.0 /gm) ?? []).length >= 8, 5000);
  const answers = got.split(/(?=^SIP\/2\.0 )/m).map((m) => {
    const r = parseMessage(Buffer.from(m, 'latin1'));
    if (!r.ok) throw new Error(`an answer does not parse: ${r.error.message}`);
    return r.message as SipResponse;
  });
  t.same(answers.map((m) => m.status), Array(8).fill(200), 'every OPTIONS answered');
  t.same(answers.map((m) => getHeader(m, 'call-id')), Array.from({ length: 8 }, (_, i) => `${String(i).padStart(10, '0')}@flood`), 'in the order asked');
  t.equal(svc.transport.stats.tcpOut - before.tcpOut, 8);
  t.equal(svc.transport.stats.tcpWrites - before.tcpWrites, 1, 'in one write');
});

t.test('a TCP client that sends and never reads is let go, not buffered for: the answers it leaves unread are bounded', async (t) => {
  const { svc, phone } = await node(t, { transport: { maxUnreadBytes: 64 << 10 } });
  const s = connect({ host: '127.0.0.1', port: svc.port, localAddress: '127.0.0.12' });
  s.on('error', () => undefined);
  await new Promise<void>((r) => s.once('connect', () => r()));
  s.pause(); // never reads a response
  let closed = false;
  s.on('close', () => (closed = true));
  const tpl = optionsTemplate(`sip:127.0.0.1:${svc.port}`, '127.0.0.12').replace('SIP/2.0/UDP', 'SIP/2.0/TCP');
  let n = 0;
  while (!closed && n < 200_000) {
    let b = '';
    for (let i = 0; i < 500; i++) b += tpl.replaceAll('@N@', String(n++).padStart(10, '0'));
    if (!s.write(b)) await new Promise<void>((r) => (closed ? r() : s.once('drain', () => r()).once('close', () => r())));
  }
  await until('the node to close the connection that does not read', () => closed, 20_000);
  t.ok(svc.transport.stats.unread >= 1, `closed for ${svc.transport.stats.unread} answer(s) it could not take, after ${n} requests`);
  const p = await phone('tcp', '127.0.0.13');
  t.equal((await p.registerWithAuth({ user: 'bob', domain: DOMAIN, password: 'builder', expires: 600 })).status, 200, 'a TCP phone registers meanwhile');
});
