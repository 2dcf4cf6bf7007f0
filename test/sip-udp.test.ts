// The SIP UDP socket's two paths (sip/udp.ts): the native one (sip/native/udp.cc, recvmmsg and
// sendmmsg) is built and used on Linux with g++; DOTS_SIP_UDP=dgram, or a host it cannot take,
// keeps node:dgram. On each path, over real sockets: a burst of 1,000 requests from one socket
// (many reads of 64 datagrams, answers sent in batches) is answered whole, each answer to its
// request; a 60 KB request and its 60 KB answer pass whole; a stranger's datagrams of every
// size from 0 bytes up, and garbage, leave the node answering.
import t from 'tap';
import type { Test } from 'tap';
import { execFileSync } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { platform } from 'node:os';
import { SipService } from '../sip/service.ts';
import { udpPath } from '../sip/udp.ts';
import { parseMessage, getHeader, type SipResponse } from '../sip/message.ts';

function gppHere(): boolean {
  try {
    execFileSync('g++', ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

async function service(t: Test): Promise<SipService> {
  const svc = new SipService({ host: '127.0.0.1', port: 0, domain: 'udp.test', openRegistration: true, users: { lookup: () => undefined } });
  await svc.start();
  t.teardown(() => svc.stop());
  return svc;
}

function options(i: number, port: number, extra = ''): Buffer {
  return Buffer.from(
    `OPTIONS sip:udp.test SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:${port};branch=z9hG4bK-burst-${i}\r\nMax-Forwards: 70\r\n` +
      `To: <sip:udp.test>\r\nFrom: <sip:probe@udp.test>;tag=t${i}\r\nCall-ID: burst-${i}@127.0.0.1\r\nCSeq: ${i + 1} OPTIONS\r\n${extra}Content-Length: 0\r\n\r\n`,
    'latin1',
  );
}

/** Sends every datagram at once from one socket; the answers by Call-ID, once all came or `ms` passed. */
async function burst(port: number, make: (i: number, localPort: number) => Buffer, n: number, ms = 10_000): Promise<Map<string, SipResponse>> {
  const sock = createSocket({ type: 'udp4', recvBufferSize: 8 << 20 });
  await new Promise<void>((r) => sock.bind(0, '127.0.0.1', () => r()));
  const local = sock.address().port;
  const got = new Map<string, SipResponse>();
  const done = new Promise<void>((resolve) => {
    const timer = setTimeout(resolve, ms);
    sock.on('message', (m) => {
      const r = parseMessage(m, { stream: false });
      if (!r.ok || r.message.kind !== 'response') return;
      got.set(getHeader(r.message, 'call-id') ?? '', r.message);
      if (got.size === n) {
        clearTimeout(timer);
        resolve();
      }
    });
  });
  for (let i = 0; i < n; i++) sock.send(make(i, local), port, '127.0.0.1');
  await done;
  sock.close();
  return got;
}

t.test('the native path is built and used on Linux with g++, and says why not elsewhere', async (t) => {
  const path = udpPath('127.0.0.1');
  if (platform() === 'linux' && gppHere()) t.same(path, { kind: 'native' }, 'Linux with g++: the install built it (npm run build:native)');
  else t.equal(path.kind, 'dgram', `no native path here: ${path.kind === 'dgram' ? path.reason : ''}`);
  t.match(udpPath('::1'), { kind: 'dgram', reason: 'the native path is IPv4 only' }, 'an IPv6 host keeps node:dgram');
  const svc = await service(t);
  t.same(svc.transport.udpPath, path, 'a service takes the path udpPath names');
});

for (const kind of ['native', 'dgram'] as const) {
  const skip = kind === 'native' && udpPath('127.0.0.1').kind !== 'native' ? 'the native path is not built here' : false;
  t.test(`${kind}: a burst, a 60 KB request and garbage`, { skip }, async (t) => {
    const before = process.env.DOTS_SIP_UDP;
    if (kind === 'dgram') process.env.DOTS_SIP_UDP = 'dgram';
    t.teardown(() => {
      if (before === undefined) delete process.env.DOTS_SIP_UDP;
      else process.env.DOTS_SIP_UDP = before;
    });
    const svc = await service(t);
    t.equal(svc.transport.udpPath?.kind, kind);

    // 1,000 at once: more than the 64 datagrams one read takes, and answers sent in batches
    const got = await burst(svc.port, (i, local) => options(i, local), 1000);
    t.equal(got.size, 1000, 'every request of the burst answered');
    let matched = 0;
    for (const [callId, r] of got) if (r.status === 200 && getHeader(r, 'cseq') === `${Number(/burst-(\d+)@/.exec(callId)?.[1]) + 1} OPTIONS`) matched++;
    t.equal(matched, 1000, 'each answer is 200 to its own request (Call-ID and CSeq)');

    // a 60 KB request (one long header) and its answer, which carries the Via back
    const big = await burst(svc.port, (i, local) => options(5000 + i, local, `Subject: ${'x'.repeat(60_000)}\r\n`), 1);
    t.equal(big.get('burst-5000@127.0.0.1')?.status, 200, 'a 60 KB datagram is read whole');

    // a stranger's datagrams: empty, one byte, binary, a half message; the node still answers
    const junk = createSocket('udp4');
    await new Promise<void>((r) => junk.bind(0, '127.0.0.1', () => r()));
    for (const d of [Buffer.alloc(0), Buffer.from([0]), Buffer.alloc(1500, 0xff), Buffer.from('INVITE sip:x SIP/2.0\r\nVia: ')]) junk.send(d, svc.port, '127.0.0.1');
    junk.close();
    const after = await burst(svc.port, (i, local) => options(9000 + i, local), 5);
    t.equal(after.size, 5, 'answering after garbage');
  });
}
