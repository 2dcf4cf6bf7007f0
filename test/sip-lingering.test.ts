// Client transactions after their final response (sip/transaction.ts): an answered INVITE
// stays Accepted for 64*T1 and passes on retransmitted 2xx (RFC 6026), as itself or, when its
// handler says how in bytes, as those bytes off the heap; a non-INVITE stays Completed for T4
// over UDP and absorbs retransmissions (Timer K); a failed INVITE ACKs a retransmitted final
// response again (Timer D); then each ends, not before its time. A real UDP transport and a UDP
// socket for the far end, on loopback.
import t from 'tap';
import type { Test } from 'tap';
import { createSocket } from 'node:dgram';
import { SipTransport } from '../sip/transport.ts';
import { TransactionLayer, type AcceptedSink } from '../sip/transaction.ts';
import { packWay, unpackWay } from '../sip/flow-bytes.ts';
import { parseMessage, type SipHeader, type SipRequest, type SipResponse } from '../sip/message.ts';
import { buildResponse } from '../sip/serialize.ts';
import { until } from './util/wait.ts';

function request(method: string, branch: string, port: number): SipRequest {
  const text =
    `${method} sip:bob@127.0.0.1:${port} SIP/2.0\r\n` +
    `Via: SIP/2.0/UDP 127.0.0.1:5999;branch=${branch}\r\n` +
    'Max-Forwards: 70\r\nFrom: <sip:alice@linger.test>;tag=a1\r\nTo: <sip:bob@linger.test>\r\n' +
    `Call-ID: ${branch}@linger.test\r\nCSeq: 1 ${method}\r\nContent-Length: 0\r\n\r\n`;
  const r = parseMessage(Buffer.from(text, 'latin1'));
  if (!r.ok || r.message.kind !== 'request') throw new Error('the request does not parse');
  return r.message;
}

t.test('an answered INVITE passes on 2xx for 64*T1, a non-INVITE absorbs its final response for T4, then both end', async (t) => {
  // T1 100 ms: Accepted lasts 6.4 s; T4 800 ms
  const { layer, port } = await setup(t);
  const flow = { proto: 'udp' as const, address: '127.0.0.1', port, conn: 0 };
  const seen: Record<string, number[]> = { INVITE: [], OPTIONS: [] };
  const handler = (m: string) => ({ response: (r: SipResponse) => void seen[m].push(r.status), timeout: () => void seen[m].push(0) });

  const invite = request('INVITE', 'z9hG4bKlinger-invite', port);
  const options = request('OPTIONS', 'z9hG4bKlinger-options', port);
  const sentAt = Date.now();
  layer.send(invite, flow, 'z9hG4bKlinger-invite', handler('INVITE'));
  layer.send(options, flow, 'z9hG4bKlinger-options', handler('OPTIONS'));
  const ok = (req: SipRequest): SipResponse => buildResponse(req, 200, 'OK', undefined, { toTag: 'b1' });

  t.ok(layer.receiveResponse(ok(invite)), 'the INVITE\'s 200 matches');
  t.ok(layer.receiveResponse(ok(options)), 'the OPTIONS\'s 200 matches');
  t.same(seen, { INVITE: [200], OPTIONS: [200] }, 'each handler heard its final response');
  t.equal(layer.clientCount, 2, 'both linger');

  t.ok(layer.receiveResponse(ok(options)), 'a retransmitted 200 to the OPTIONS is absorbed (Completed, Timer K)');
  t.ok(layer.receiveResponse(ok(invite)), 'a retransmitted 200 to the INVITE matches (Accepted)');
  t.same(seen, { INVITE: [200, 200], OPTIONS: [200] }, 'and is passed on, where the OPTIONS\'s is not');

  await until('the OPTIONS transaction ends after T4', () => layer.clientCount === 1, 10_000);
  t.ok(Date.now() - sentAt >= 800, `not before T4 (${Date.now() - sentAt} ms)`);
  t.notOk(layer.receiveResponse(ok(options)), 'a 200 to the OPTIONS after that matches nothing');
  t.ok(layer.receiveResponse(ok(invite)), 'the INVITE is still Accepted');
  t.same(seen.INVITE, [200, 200, 200]);

  await until('the INVITE transaction ends after 64*T1', () => layer.clientCount === 0, 20_000);
  t.ok(Date.now() - sentAt >= 6400, `not before 64*T1 (${Date.now() - sentAt} ms)`);
  const strays = layer.stats.strayResponses;
  t.notOk(layer.receiveResponse(ok(invite)), 'a 200 to the INVITE after that matches nothing (the proxy forwards it statelessly)');
  t.equal(layer.stats.strayResponses, strays + 1, 'counted as a stray response');
  t.same(seen, { INVITE: [200, 200, 200], OPTIONS: [200] }, 'no handler heard anything after its transaction ended');
});

/** A layer on a real UDP transport (T1 100 ms, T4 800 ms) and a far end that collects what it is sent. */
async function setup(t: Test): Promise<{ layer: TransactionLayer; transport: SipTransport; port: number; heard: string[] }> {
  const transport = new SipTransport({ host: '127.0.0.1', port: 0 }, { message: () => undefined, malformed: () => undefined });
  await transport.start();
  const layer = new TransactionLayer(transport, { timers: { t1: 100, t2: 400, t4: 800 } });
  const far = createSocket('udp4');
  const heard: string[] = [];
  far.on('message', (m) => heard.push(m.toString('latin1').split('\r\n')[0]));
  await new Promise<void>((r) => far.bind(0, '127.0.0.1', () => r()));
  t.teardown(async () => {
    layer.stop();
    far.close();
    await transport.stop();
  });
  return { layer, transport, port: far.address().port, heard };
}

t.test('an Accepted INVITE kept as its handler\'s bytes: later 2xx go to the sink with them, nothing else does, until 64*T1', async (t) => {
  const { layer, port } = await setup(t);
  const flow = { proto: 'udp' as const, address: '127.0.0.1', port, conn: 0 };
  const sunk: Array<[string, number]> = [];
  const sink: AcceptedSink = { acceptedResponse: (bytes, res) => void sunk.push([bytes.toString(), res.status]) };
  const heard: number[] = [];
  let asked = 0;
  const handler = {
    response: (r: SipResponse) => void heard.push(r.status),
    timeout: () => void heard.push(0),
    accepted: () => {
      asked++;
      return { sink, bytes: Buffer.from('the way up') };
    },
  };
  const invite = request('INVITE', 'z9hG4bKoff-heap', port);
  const sentAt = Date.now();
  layer.send(invite, flow, 'z9hG4bKoff-heap', handler);
  const res = (status: number): SipResponse => buildResponse(invite, status, 'X', undefined, { toTag: 'b2' });
  t.ok(layer.receiveResponse(res(180)), 'a 180 matches the live transaction');
  t.ok(layer.receiveResponse(res(200)), 'the 200 matches');
  t.same(heard, [180, 200], 'the handler heard both');
  t.equal(asked, 1, 'and was asked once for its bytes, after the 200');
  t.equal(layer.clientCount, 1, 'the transaction is kept');
  t.ok(layer.receiveResponse(res(200)), 'a retransmitted 200 matches');
  t.same(sunk, [['the way up', 200]], 'and goes to the sink with the bytes');
  t.ok(layer.receiveResponse(res(486)), 'a failure after it matches too');
  t.same(sunk, [['the way up', 200]], 'and is absorbed (RFC 6026: only 2xx pass on)');
  t.same(heard, [180, 200], 'the handler hears nothing more: it is not kept');
  await until('the transaction ends after 64*T1', () => layer.clientCount === 0, 20_000);
  t.ok(Date.now() - sentAt >= 6400, `not before 64*T1 (${Date.now() - sentAt} ms)`);
  t.notOk(layer.receiveResponse(res(200)), 'a 200 after that matches nothing');
  t.same(sunk, [['the way up', 200]]);
});

t.test('a failed INVITE over UDP ACKs its final response, and a retransmission of it again (Timer D)', async (t) => {
  const { layer, transport, port, heard } = await setup(t);
  const flow = { proto: 'udp' as const, address: '127.0.0.1', port, conn: 0 };
  const statuses: number[] = [];
  const invite = request('INVITE', 'z9hG4bKtimer-d', port);
  // the user passes the failure on (here to the same far end, so their order is kept)
  const passOn = (r: SipResponse): void => {
    statuses.push(r.status);
    transport.send(flow, Buffer.from(`PASSED ON ${r.status}\r\n`));
  };
  layer.send(invite, flow, 'z9hG4bKtimer-d', { response: passOn, timeout: () => void statuses.push(0) });
  await until('the far end has the INVITE', () => heard.length === 1, 5000);
  const busy = buildResponse(invite, 486, 'Busy Here', undefined, { toTag: 'b3' });
  t.ok(layer.receiveResponse(busy), 'the 486 matches');
  await until('the far end has the ACK', () => heard.filter((l) => l.startsWith('ACK ')).length === 1, 5000);
  t.same(heard.slice(1, 3).map((l) => l.split(' ')[0]), ['PASSED', 'ACK'], 'what the user made of the failure left before the ACK');
  t.ok(layer.receiveResponse(busy), 'the retransmitted 486 matches');
  await until('and is ACKed again', () => heard.filter((l) => l.startsWith('ACK ')).length === 2, 5000);
  t.same(statuses, [486], 'the user heard the failure once');
  t.equal(layer.clientCount, 1, 'the transaction is kept for Timer D');
});

t.test('a way packed and unpacked: transport, port, connection id, Via port, address, headers and tail', async (t) => {
  const headers: SipHeader[] = [
    { name: 'v', key: 'via', value: 'SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKa' },
    { name: 'Via', key: 'via', value: 'SIP/2.0/TLS [2001:db8::1]:5061;branch=z9hG4bKb;x="é"' },
  ];
  for (const proto of ['udp', 'tcp', 'tls', 'ws', 'wss'] as const) {
    const flow = { proto, address: proto === 'udp' ? '192.0.2.7' : '2001:db8::42', port: 65535, conn: proto === 'udp' ? 0 : 2 ** 40 + 3 };
    const w = unpackWay(packWay(flow, proto === 'tcp' ? null : 5062, headers, Buffer.from('ACK bytes')));
    t.same(w.flow, flow, `${proto}: the flow`);
    t.equal(w.viaPort, proto === 'tcp' ? null : 5062, `${proto}: the Via port`);
    t.same(w.headers, headers, `${proto}: the headers, names as written`);
    t.equal(w.tail.toString(), 'ACK bytes', `${proto}: the tail`);
  }
  const bare = unpackWay(packWay({ proto: 'udp', address: '127.0.0.1', port: 5060, conn: 0 }, null));
  t.same(bare.headers, [], 'no headers');
  t.equal(bare.tail.length, 0, 'no tail');
});
