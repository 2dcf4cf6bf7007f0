// Client transactions after their final response (sip/transaction.ts, linger): an answered INVITE
// stays Accepted for 64*T1 and passes on retransmitted 2xx (RFC 6026); a non-INVITE stays
// Completed for T4 over UDP and absorbs retransmissions (Timer K); then each ends, not before its
// time. A real UDP transport and a UDP socket for the far end, on loopback.
import t from 'tap';
import { createSocket } from 'node:dgram';
import { SipTransport } from '../sip/transport.ts';
import { TransactionLayer } from '../sip/transaction.ts';
import { parseMessage, type SipRequest, type SipResponse } from '../sip/message.ts';
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
  const transport = new SipTransport({ host: '127.0.0.1', port: 0 }, { message: () => undefined, malformed: () => undefined });
  await transport.start();
  // T1 100 ms: Accepted lasts 6.4 s; T4 800 ms
  const layer = new TransactionLayer(transport, { timers: { t1: 100, t2: 400, t4: 800 } });
  const far = createSocket('udp4');
  await new Promise<void>((r) => far.bind(0, '127.0.0.1', () => r()));
  t.teardown(async () => {
    layer.stop();
    far.close();
    await transport.stop();
  });
  const port = far.address().port;
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
