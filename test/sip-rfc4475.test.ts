// Every RFC 4475 torture message in test/fixtures/rfc4475/ sent over UDP to a running node, with
// the answer its index.tsv calls for. The node is started as the registrar of example.com with
// open registration (the messages carry no credentials). It is a registrar, not yet a proxy: a
// request for a user it would have to forward is answered 404 when that user is not registered
// here (the answer a proxy that cannot find the user gives), never 400 when it is well formed.
import t from 'tap';
import type { Test } from 'tap';
import { readFileSync } from 'node:fs';
import { createSocket } from 'node:dgram';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startNode } from './util/proc.ts';
import { tmpDir } from './util/tmp.ts';
import { getHeader, getHeaders, parseMessage, type SipResponse } from '../sip/message.ts';

const DIR = fileURLToPath(new URL('./fixtures/rfc4475/', import.meta.url));

/** what the node answers: a status, or null for "nothing comes back" */
const EXPECT: Record<string, { status: number | null; why: string; check?: (r: SipResponse, tt: Test) => void }> = {
  'wsinv.dat': { status: 403, why: 'parsed; its Route names another host and no dialog of this node explains it: not relayed' },
  'intmeth.dat': { status: 501, why: 'unknown method at a UAS' },
  'esc01.dat': { status: 404, why: 'parsed; another domain' },
  'escnull.dat': {
    status: 200,
    why: 'registered, %00 kept escaped',
    check: (r, tt) => {
      const c = getHeaders(r, 'contact');
      tt.ok(c.some((x) => x.startsWith('<sip:%00@host5.example.com>')), 'contact %00');
      tt.ok(c.some((x) => x.startsWith('<sip:%00%00@host5.example.com>')), 'contact %00%00, distinct');
    },
  },
  'esc02.dat': { status: 501, why: 'RE%47IST%45R is not REGISTER' },
  'lwsdisp.dat': { status: 404, why: 'parsed; no such user here' },
  'longreq.dat': { status: 404, why: 'parsed; no such user here' },
  'dblreq.dat': { status: 200, why: 'the REGISTER by Content-Length; the trailing INVITE ignored' },
  'semiuri.dat': { status: 404, why: 'parsed; the user part holds the ;' },
  'transports.dat': { status: 404, why: 'parsed; unknown transports tolerated' },
  'mpart01.dat': { status: 403, why: 'parsed; its preloaded Route to another address is not relayed (no open relay)' },
  'unreason.dat': { status: null, why: 'a response matching no transaction: dropped' },
  'noreason.dat': { status: null, why: 'a response matching no transaction: dropped' },
  'badinv01.dat': { status: 400, why: 'extraneous separators' },
  'clerr.dat': { status: 400, why: 'Content-Length larger than the datagram' },
  'ncl.dat': { status: 400, why: 'negative Content-Length' },
  'scalar02.dat': { status: 400, why: 'overlarge scalars' },
  'scalarlg.dat': { status: null, why: 'response with overlarge scalars: dropped' },
  'quotbal.dat': { status: 400, why: 'unterminated quoted string' },
  'ltgtruri.dat': { status: 400, why: '<> around the Request-URI' },
  'lwsruri.dat': { status: 400, why: 'LWS in the Request-URI' },
  'lwsstart.dat': { status: 400, why: 'several SP in the Request-Line' },
  'trws.dat': { status: 400, why: 'SP at the end of the Request-Line' },
  'escruri.dat': { status: 400, why: 'escaped headers in the Request-URI' },
  'baddate.dat': { status: 400, why: 'Date not in GMT' },
  'regbadct.dat': { status: 400, why: 'name-addr URI not in <>' },
  'badaspec.dat': { status: 400, why: 'spaces in an addr-spec' },
  'baddn.dat': { status: 400, why: 'non-token characters in a display name' },
  'badvers.dat': { status: 505, why: 'SIP/7.0' },
  'mismatch01.dat': { status: 400, why: 'CSeq method differs' },
  'mismatch02.dat': { status: 400, why: 'unknown method, CSeq method differs' },
  'bigcode.dat': { status: null, why: 'overlarge response code: dropped' },
  'badbranch.dat': { status: 404, why: 'RFC 2543 transaction, not rejected' },
  'insuf.dat': { status: 400, why: 'missing required headers' },
  'unkscm.dat': { status: 416, why: 'unknown Request-URI scheme' },
  'novelsc.dat': { status: 416, why: 'a scheme not served' },
  'unksm2.dat': { status: 404, why: 'unknown schemes in To/Contact are no error; isbn: is no address of record here' },
  'bext01.dat': {
    status: 420,
    why: 'Require and Proxy-Require tags not supported',
    check: (r, tt) => tt.same(getHeader(r, 'unsupported')?.split(/,\s*/).sort(), ['noProxiesSupportThis', 'norDoAnyProxiesSupportThis', 'nothingSupportsThis', 'nothingSupportsThisEither']),
  },
  'invut.dat': { status: 404, why: 'for a user: a proxy forwards it (no such user here)' },
  'regaut01.dat': { status: 401, why: 'unknown scheme is not authentication', check: (r, tt) => tt.match(getHeader(r, 'www-authenticate'), /^Digest realm="example.com"/) },
  'multi01.dat': { status: 400, why: 'several values in single-value headers' },
  'mcl01.dat': { status: 400, why: 'several Content-Length values' },
  'bcast.dat': { status: null, why: 'a response with a broadcast Via: dropped, nothing sent to 255.255.255.255' },
  'zeromf.dat': { status: 483, why: 'Max-Forwards 0 where it would be forwarded' },
  'cparam01.dat': { status: 200, why: 'binding kept with its header parameter', check: (r, tt) => tt.match(getHeader(r, 'contact'), /^<sip:\+19725552222@gw1\.example\.net>;unknownparam;expires=\d+$/) },
  'cparam02.dat': { status: 200, why: 'the URI parameter is part of the contact', check: (r, tt) => tt.match(getHeader(r, 'contact'), /^<sip:\+19725552222@gw1\.example\.net;unknownparam>;expires=\d+$/) },
  'regescrt.dat': { status: 200, why: 'the escaped header is part of the contact', check: (r, tt) => tt.match(getHeader(r, 'contact'), /^<sip:user@example\.com\?Route=%3Csip:sip\.example\.com%3E>;expires=\d+$/) },
  'sdp01.dat': { status: 404, why: 'for a user: a proxy forwards it (no such user here)' },
  'inv2543.dat': { status: 404, why: 'RFC 2543 syntax accepted' },
};

/** Sends one datagram from its own socket; resolves with the responses seen within `waitMs`. */
function exchange(port: number, msg: Buffer, waitMs: number): Promise<SipResponse[]> {
  return new Promise((resolve) => {
    const s = createSocket('udp4');
    const got: SipResponse[] = [];
    s.on('message', (b) => {
      const r = parseMessage(b);
      // the node pings registered contacts with OPTIONS: those are requests, not answers
      if (r.ok && r.message.kind === 'response') got.push(r.message);
    });
    s.bind(0, '127.0.0.1', () => {
      s.send(msg, port, '127.0.0.1');
      setTimeout(() => {
        s.close();
        resolve(got);
      }, waitMs);
    });
  });
}

t.test('RFC 4475 over UDP to a running node', async (t) => {
  const node = await startNode(t, { datadir: tmpDir(t), args: ['--domain', 'example.com', '--open-registration'] });
  const port = node.sipPort;
  t.ok(port > 0);
  const rows = readFileSync(join(DIR, 'index.tsv'), 'utf8').split('\n').slice(1).filter((l) => l.trim() !== '').map((l) => l.split('\t'));
  t.equal(rows.length, Object.keys(EXPECT).length, 'an expectation for every message in the index');
  // REGISTERs go last: regescrt.dat registers sip:user@example.com, the user most other
  // messages are addressed to, which would turn their 404 into a 480
  const isRegister = (f: string): boolean => readFileSync(join(DIR, f)).subarray(0, 9).toString('latin1') === 'REGISTER ';
  const results: SipResponse[][] = new Array<SipResponse[]>(rows.length);
  for (const phase of [false, true]) {
    const idx = rows.map((_, i) => i).filter((i) => isRegister(rows[i][0]) === phase);
    const got = await Promise.all(idx.map((i) => exchange(port, readFileSync(join(DIR, rows[i][0])), 1200)));
    idx.forEach((i, k) => (results[i] = got[k]));
  }
  rows.forEach(([file, section, title, , expected], i) => {
    const e = EXPECT[file];
    const got = results[i];
    t.test(`${file} (${section} ${title}): ${expected}`, async (tt) => {
      tt.ok(e, 'has an expectation');
      if (e === undefined) return;
      if (e.status === null) {
        tt.equal(got.length, 0, `no answer: ${e.why}`);
        return;
      }
      // a non-2xx final answer to an INVITE is retransmitted (Timer G) until the ACK, which
      // this test never sends: copies of one answer, same To tag
      const distinct = new Set(got.map((r) => `${r.status} ${getHeader(r, 'to') ?? ''}`));
      tt.equal(distinct.size, 1, 'exactly one answer');
      if (got.length > 1) tt.equal(parseMessage(readFileSync(join(DIR, file))).ok && got[0].status >= 300, true, 'only a final INVITE answer is retransmitted');
      tt.equal(got[0]?.status, e.status, `${e.status}: ${e.why}`);
      if (got[0] !== undefined && e.check) e.check(got[0], tt);
    });
  });
  // and the node is still there
  const opt = Buffer.from('OPTIONS sip:example.com SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bKalive\r\nTo: <sip:example.com>\r\nFrom: <sip:t@example.com>;tag=1\r\nCall-ID: alive\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n', 'latin1');
  const after = await exchange(port, opt, 500);
  t.equal(after[0]?.status, 200, 'still answering after the whole suite');
  t.equal(node.child.exitCode, null, 'never crashed');
});
