import t from 'tap';
import type { Test } from 'tap';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import {
  SipParseError,
  SipStreamFramer,
  addHeader,
  binaryToUtf8,
  countHeaders,
  getHeader,
  getHeaderValues,
  getHeaders,
  headerKey,
  isKeepalive,
  parseContentLength,
  parseMessage,
  prependHeader,
  removeHeaders,
  setHeader,
  splitHeaderList,
  utf8ToBinary,
} from '../sip/message.ts';
import type { FramerEvent, SipMessage, SipRequest, SipResponse } from '../sip/message.ts';
import {
  formatNameAddr,
  formatUri,
  formatVia,
  getParam,
  isRfc3261Branch,
  nameAddrParam,
  normalizeEscapes,
  parseCSeq,
  parseContact,
  parseExpires,
  parseMaxForwards,
  parseNameAddr,
  parseNameAddrList,
  parseSipDate,
  parseSipUri,
  parseUri,
  parseVia,
  parseViaList,
  unescapeUriPart,
  uriEquals,
  uriParam,
} from '../sip/uri.ts';
import type { NameAddr, SipUri, Uri } from '../sip/uri.ts';
import { validateRequest, validateResponse } from '../sip/validate.ts';
import { buildResponse, newBranch, newTag, serializeMessage } from '../sip/serialize.ts';

const DIR = fileURLToPath(new URL('./fixtures/rfc4475/', import.meta.url));
const load = (f: string): Buffer => readFileSync(join(DIR, f));

// ---------------------------------------------------------------------------
// helpers

function parseOk(tt: Test, buf: Buffer | string): SipMessage {
  const r = parseMessage(typeof buf === 'string' ? Buffer.from(buf, 'latin1') : buf, { stream: false });
  if (!r.ok) {
    tt.fail(`parse failed: ${r.error.message}`);
    throw r.error;
  }
  return r.message;
}

function req(tt: Test, f: string): SipRequest {
  const m = parseOk(tt, load(f));
  tt.equal(m.kind, 'request', 'is a request');
  return m as SipRequest;
}

function res(tt: Test, f: string): SipResponse {
  const m = parseOk(tt, load(f));
  tt.equal(m.kind, 'response', 'is a response');
  return m as SipResponse;
}

/** request that parses and passes validation */
function validReq(tt: Test, f: string): SipRequest {
  const m = req(tt, f);
  const e = validateRequest(m);
  tt.equal(e, null, `validates${e ? ': ' + e.message : ''}`);
  return m;
}

function parseFails(tt: Test, f: string, status: number, detail?: RegExp): SipMessage | null {
  const r = parseMessage(load(f), { stream: false });
  tt.equal(r.ok, false, 'parser rejects');
  if (r.ok) return null;
  tt.type(r.error, SipParseError);
  tt.equal(r.error.status, status, `status ${status}`);
  if (detail) tt.match(r.error.detail, detail);
  return r.partial;
}

function validatorFails(tt: Test, f: string, status: number, detail?: RegExp): SipRequest {
  const m = req(tt, f);
  const e = validateRequest(m);
  tt.type(e, SipParseError, 'validator rejects');
  tt.equal(e?.status, status, `status ${status}`);
  if (detail) tt.match(e?.detail, detail);
  return m;
}

const sipUri = (u: Uri): SipUri => {
  if (u.kind !== 'sip') throw new Error('not a SIP URI');
  return u;
};
const na = (m: SipMessage, h: string): NameAddr => parseNameAddr(getHeader(m, h) as string);

/** the partial of a failed request parse can be answered */
function answerable(tt: Test, partial: SipMessage | null, status: number): void {
  tt.ok(partial, 'partial message available');
  if (partial === null) return;
  tt.equal(partial.kind, 'request', 'partial is a request: answer it');
  const r = buildResponse(partial as SipRequest, status, 'Bad Request', undefined, { toTag: 'x1' });
  tt.ok(getHeader(r, 'via'), 'response carries the Via');
  tt.ok(getHeader(r, 'call-id'), 'response carries the Call-ID');
  tt.ok(getHeader(r, 'cseq'), 'response carries the CSeq');
}

// ---------------------------------------------------------------------------
// RFC 4475: one check per file listed in index.tsv

type Check = (tt: Test) => void;

const CHECKS: Record<string, Check> = {
  // 3.1.1 valid messages
  'wsinv.dat': (tt) => {
    const m = validReq(tt, 'wsinv.dat');
    tt.equal(m.method, 'INVITE');
    tt.equal(m.uri, 'sip:vivekg@chair-dnrc.example.com;unknownparam');
    tt.same(
      m.headers.map((h) => h.name),
      ['TO', 'from', 'MaX-fOrWaRdS', 'Call-ID', 'Content-Length', 'cseq', 'Via', 's', 'NewFangledHeader', 'UnknownHeaderWithUnusualValue', 'Content-Type', 'Route', 'v', 'm'],
      'header order and original names preserved',
    );
    const to = na(m, 'to');
    tt.equal(to.displayName, null, 'To has no display name');
    tt.equal(getParam(to.params, 'tag'), '1918181833n', 'To tag across folding and LWS around =');
    tt.equal(formatUri(to.uri), 'sip:vivekg@chair-dnrc.example.com');
    const from = na(m, 'from');
    tt.equal(from.displayName, 'J Rosenberg \\"', 'From display name with escaped backslash and quote');
    tt.equal(getParam(from.params, 'tag'), '98asjd8', 'From tag on a folded line');
    tt.equal(parseMaxForwards(getHeader(m, 'max-forwards') as string), 68, 'Max-Forwards 0068');
    tt.equal(getHeader(m, 'call-id'), 'wsinv.ndaksdj@192.0.2.1');
    tt.equal(parseContentLength(getHeader(m, 'content-length') as string), 150);
    tt.equal(m.body.length, 150);
    tt.equal(m.body.subarray(0, 5).toString('latin1'), 'v=0\r\n');
    tt.same(parseCSeq(getHeader(m, 'cseq') as string), { seq: 9, method: 'INVITE' }, 'CSeq folded');
    const vias = getHeaders(m, 'via').flatMap(parseViaList);
    tt.equal(vias.length, 3);
    tt.same(
      vias.map((v) => [v.protocol, v.version, v.transport, v.host, v.branch]),
      [
        ['SIP', '2.0', 'UDP', '192.0.2.2', '390skdjuw'],
        ['SIP', '2.0', 'TCP', 'spindle.example.com', 'z9hG4bK9ikj8'],
        ['SIP', '2.0', 'UDP', '192.168.255.111', 'z9hG4bK30239'],
      ],
      'Vias with LWS around / and folded branch',
    );
    tt.equal(getHeader(m, 'subject'), '', 's: empty Subject (compact form)');
    tt.equal(getHeader(m, 'NewFangledHeader'), 'newfangled value continued newfangled value', 'folded unknown header');
    tt.equal(getHeader(m, 'unknownheaderwithunusualvalue'), ';;,,;;,;');
    tt.equal(getHeader(m, 'content-type'), 'application/sdp');
    const route = parseNameAddrList(getHeader(m, 'route') as string, { requireNameAddr: true });
    tt.equal(route.length, 1);
    const ru = sipUri(route[0].uri);
    tt.equal(ru.host, 'services.example.com');
    tt.same(ru.params, [
      { name: 'lr', value: null },
      { name: 'unknownwith', value: 'value' },
      { name: 'unknown-no-value', value: null },
    ]);
    const contact = parseContact(getHeader(m, 'contact') as string);
    if (contact === '*') throw new Error('unexpected *');
    tt.equal(contact[0].displayName, 'Quoted string ""');
    tt.equal(formatUri(contact[0].uri), 'sip:jdrosen@example.com');
    tt.equal(getParam(contact[0].params, 'newparam'), 'newvalue');
    tt.equal(getParam(contact[0].params, 'secondparam'), null);
    tt.equal(getParam(contact[0].params, 'q'), '0.33');
  },

  'intmeth.dat': (tt) => {
    const m = validReq(tt, 'intmeth.dat');
    const method = "!interesting-Method0123456789_*+`.%indeed'~";
    tt.equal(m.method, method);
    tt.same(parseCSeq(getHeader(m, 'cseq') as string), { seq: 139122385, method });
    const u = parseSipUri(m.uri);
    tt.equal(u.user, "1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*");
    tt.equal(u.password, "&it+has=1,weird!*pas$wo~d_too.(doesn't-it)");
    tt.equal(u.host, 'example.com');
    tt.equal(parseVia(getHeader(m, 'via') as string).branch, "z9hG4bK-.!%66*_+`'~");
    tt.equal(na(m, 'to').displayName, 'BEL:\x07 NUL:\x00 DEL:\x7f', 'quoted-pairs with control characters');
    const from = na(m, 'from');
    tt.equal(from.displayName, "token1~` token2'+_ token3*%!.-");
    tt.equal(getParam(from.params, 'tag'), "_token~1'+`*%!-.");
    tt.equal(binaryToUtf8(getParam(from.params, "fromParam''~+*_!.-%") as string), 'работающий');
    tt.equal(getHeader(m, 'call-id'), "intmeth.word%ZK-!.*_+'@word`~)(><:\\/\"][?}{");
    tt.equal(binaryToUtf8(getHeader(m, "extensionHeader-!.%*+_`'~") as string), '\ufeff大停電');
    tt.equal(parseMaxForwards(getHeader(m, 'max-forwards') as string), 255);
  },

  'esc01.dat': (tt) => {
    const m = validReq(tt, 'esc01.dat');
    const ru = parseSipUri(m.uri);
    tt.equal(ru.user, 'sips%3Auser%40example.com', 'escapes kept as written');
    tt.equal(unescapeUriPart(ru.user as string), 'sips:user@example.com');
    tt.ok(uriEquals(m.uri, 'sip:sips%3auser%40example.com@example.net'), 'hex case does not matter');
    tt.notOk(uriEquals(m.uri, 'sip:sips%3Auser%40example.com@example.org'));
    const to = na(m, 'to');
    tt.ok(uriEquals(to.uri, 'sip:user@example.com'), 'To: %75se%72 == user');
    tt.equal(formatUri(to.uri), 'sip:%75se%72@example.com', 'serialised as received');
    const from = na(m, 'from');
    tt.equal(unescapeUriPart(sipUri(from.uri).user as string), 'I have spaces');
    tt.ok(uriEquals(from.uri, 'sip:I%20have%20spaces@example.net'));
    tt.equal(getParam(from.params, 'tag'), '938');
    const c = parseContact(getHeader(m, 'contact') as string);
    if (c === '*') throw new Error('unexpected *');
    const cu = sipUri(c[0].uri);
    tt.ok(uriEquals(cu, 'sip:caller@host5.example.net;lr;name=value%25%34%31'), 'Contact equals its unescaped form');
    tt.notOk(uriEquals(cu, 'sip:caller@host5.example.net;lr;name=valueA'), 'no recursive unescaping (value%41 != valueA)');
    tt.notOk(uriEquals(cu, 'sip:caller@host5.example.net;lr;name=value%41'), 'value%2541 != value%41');
    tt.equal(unescapeUriPart(uriParam(cu, 'n%61me') as string), 'value%41');
    tt.equal(getHeader(m, 'call-id'), 'esc01.239409asdfakjkn23onasd0-3234', 'i: compact Call-ID');
    tt.equal(getHeader(m, 'content-type'), 'application/sdp', 'C: compact Content-Type');
  },

  'escnull.dat': (tt) => {
    const m = validReq(tt, 'escnull.dat');
    tt.equal(m.method, 'REGISTER');
    const to = sipUri(na(m, 'to').uri);
    tt.equal(to.user, 'null-%00-null', '%00 stays escaped');
    const raw = unescapeUriPart(to.user as string);
    tt.equal(raw.length, 11, 'no truncation at the NUL');
    tt.equal(raw.charCodeAt(5), 0);
    const contacts = getHeaders(m, 'contact').map((v) => parseNameAddr(v).uri);
    tt.equal(contacts.length, 2);
    tt.equal(sipUri(contacts[0]).user, '%00');
    tt.equal(sipUri(contacts[1]).user, '%00%00');
    tt.notOk(uriEquals(contacts[0], contacts[1]), '%00 != %00%00');
    tt.equal(formatUri(contacts[1]), 'sip:%00%00@host5.example.com');
    tt.ok(serializeMessage(m).includes('sip:null-%00-null@example.com'), 'serialised with the escape');
    tt.equal(parseContentLength(getHeader(m, 'l') as string), 0, 'L:0 without space');
  },

  'esc02.dat': (tt) => {
    const m = validReq(tt, 'esc02.dat');
    tt.equal(m.method, 'RE%47IST%45R', 'method is a token with %, not REGISTER');
    tt.equal(parseCSeq(getHeader(m, 'cseq') as string).method, 'RE%47IST%45R');
    tt.equal(na(m, 'to').displayName, '%Z%45');
    tt.equal(parseVia(getHeader(m, 'via') as string).branch, 'z9hG4bK209%fzsnel234');
    tt.equal(countHeaders(m, 'contact'), 2, 'C%6Fntact is not Contact');
    tt.equal(getHeader(m, 'C%6Fntact'), '<sip:alias2@host2.example.com>');
  },

  'lwsdisp.dat': (tt) => {
    const m = validReq(tt, 'lwsdisp.dat');
    const from = na(m, 'from');
    tt.equal(from.displayName, 'caller');
    tt.equal(formatUri(from.uri), 'sip:caller@example.com');
    tt.equal(getParam(from.params, 'tag'), '323');
  },

  'longreq.dat': (tt) => {
    const m = validReq(tt, 'longreq.dat');
    const to = na(m, 'to');
    tt.equal(to.displayName, 'I have a user name of ' + 'extreme'.repeat(10) + ' proportion');
    const tu = sipUri(to.uri);
    tt.equal(tu.port, 6000);
    tt.equal(tu.params.length, 3);
    tt.equal(tu.params[0].value, 'verylong' + 'long'.repeat(19) + 'value');
    tt.equal(tu.params[2].value, null);
    const from = na(m, 'from');
    tt.equal(sipUri(from.uri).user, 'amazinglylongcallername'.repeat(5));
    tt.equal((getParam(from.params, 'tag') as string).length, 155);
    tt.equal(getHeader(m, 'call-id'), 'longreq.one' + 'really'.repeat(20) + 'longcallid');
    const vias = getHeaders(m, 'via').flatMap(parseViaList);
    tt.equal(vias.length, 34, 'all 34 Via headers in any case/compact form');
    tt.same(vias.slice(0, 3).map((v) => v.host), ['sip33.example.com', 'sip32.example.com', 'sip31.example.com']);
    const last = vias[33];
    tt.equal(last.received, '192.0.2.5');
    tt.equal(last.branch, 'verylong' + 'long'.repeat(49) + 'branchvalue');
    const unk = getHeader(m, 'Unknown-' + 'LongLong'.repeat(10) + '-Name') as string;
    tt.ok(unk.startsWith('unknown-longlong'), 'unknown long header readable');
    tt.equal(m.body.length, 150);
  },

  'dblreq.dat': (tt) => {
    const buf = load('dblreq.dat');
    const r = parseMessage(buf, { stream: false });
    if (!r.ok) throw r.error;
    const m = r.message as SipRequest;
    tt.equal(m.method, 'REGISTER', 'first message taken');
    tt.equal(m.body.length, 0);
    tt.ok(r.length < buf.length, 'trailing octets not consumed');
    tt.match(buf.subarray(r.length).toString('latin1'), /^\r\nINVITE sip:joe@example.com/, 'the rest is the ignored second message');
    tt.equal(getHeader(m, 'call-id'), 'dblreq.0ha0isndaksdj99sdfafnl3lk233412', 'I: compact Call-ID');
    tt.equal(validateRequest(m), null);
  },

  'semiuri.dat': (tt) => {
    const m = validReq(tt, 'semiuri.dat');
    const u = parseSipUri(m.uri);
    tt.equal(u.user, 'user;par=u%40example.net', '; stays in the user part');
    tt.equal(u.host, 'example.com');
    tt.same(u.params, []);
    tt.same(getHeaderValues(m, 'accept'), [
      'application/sdp',
      'application/pkcs7-mime',
      'multipart/mixed',
      'multipart/signed',
      'message/sip',
      'message/sipfrag',
    ]);
  },

  'transports.dat': (tt) => {
    const m = validReq(tt, 'transports.dat');
    const vias = getHeaders(m, 'via').map(parseVia);
    tt.same(vias.map((v) => v.transport), ['UDP', 'SCTP', 'TLS', 'UNKNOWN', 'TCP']);
    tt.equal(vias[3].host, 't4.example.com');
    tt.equal(getHeader(m, 'call-id'), 'transports.kijh4akdnaqjkwendsasfdj');
  },

  'mpart01.dat': (tt) => {
    const m = validReq(tt, 'mpart01.dat');
    tt.equal(m.method, 'MESSAGE');
    tt.equal(m.body.length, 553, 'body length from Content-Length');
    tt.ok(m.body.subarray(-22).toString('latin1') === '--7a9cbec02ceef655--\r\n', 'body ends with the closing boundary');
    tt.equal(getHeader(m, 'content-type'), 'multipart/mixed;boundary=7a9cbec02ceef655');
    tt.equal(parseSipDate(getHeader(m, 'date') as string).toISOString(), '2005-10-15T04:44:56.000Z');
    const via = parseVia(getHeader(m, 'via') as string);
    tt.equal(via.port, 5070);
    tt.equal(via.hasRport, true);
    tt.equal(via.rport, null);
  },

  'unreason.dat': (tt) => {
    const m = res(tt, 'unreason.dat');
    tt.equal(m.status, 200);
    tt.equal(binaryToUtf8(m.reason), '= 2**3 * 5**2 но сто девяносто девять - простое');
    tt.equal(m.body.length, 154);
    tt.equal(validateResponse(m), null);
  },

  'noreason.dat': (tt) => {
    const m = res(tt, 'noreason.dat');
    tt.equal(m.status, 100);
    tt.equal(m.reason, '');
    tt.equal(validateResponse(m), null);
  },

  // 3.1.2 invalid messages
  'badinv01.dat': (tt) => {
    validatorFails(tt, 'badinv01.dat', 400, /parameter/);
    tt.throws(() => parseViaList('SIP/2.0/UDP 192.0.2.15;;,;,,'));
    tt.throws(() => parseContact('"Joe" <sip:joe@example.org>;;;;'));
  },
  'clerr.dat': (tt) => answerable(tt, parseFails(tt, 'clerr.dat', 400, /Content-Length larger/), 400),
  'ncl.dat': (tt) => answerable(tt, parseFails(tt, 'ncl.dat', 400, /Content-Length/), 400),
  'scalar02.dat': (tt) => {
    const m = validatorFails(tt, 'scalar02.dat', 400, /CSeq/);
    tt.throws(() => parseMaxForwards(getHeader(m, 'max-forwards') as string), 'Max-Forwards 300 rejected');
    tt.equal(parseExpires(getHeader(m, 'expires') as string), null, 'Expires > 2^32-1 not a value');
    tt.equal(parseExpires(getParam(na(m, 'contact').params, 'expires') as string), null, 'expires param > 2^32-1 not a value');
  },
  'scalarlg.dat': (tt) => {
    const m = res(tt, 'scalarlg.dat');
    const e = validateResponse(m);
    tt.type(e, SipParseError, 'response rejected: discard');
    tt.match(e?.detail, /CSeq/);
  },
  'quotbal.dat': (tt) => validatorFails(tt, 'quotbal.dat', 400, /quoted-string/),
  'ltgtruri.dat': (tt) => validatorFails(tt, 'ltgtruri.dat', 400),
  'lwsruri.dat': (tt) => answerable(tt, parseFails(tt, 'lwsruri.dat', 400, /Request-Line/), 400),
  'lwsstart.dat': (tt) => answerable(tt, parseFails(tt, 'lwsstart.dat', 400, /Request-Line/), 400),
  'trws.dat': (tt) => answerable(tt, parseFails(tt, 'trws.dat', 400, /Request-Line/), 400),
  'escruri.dat': (tt) => validatorFails(tt, 'escruri.dat', 400, /Request-URI/),
  'baddate.dat': (tt) => {
    const m = validatorFails(tt, 'baddate.dat', 400, /Date/);
    tt.throws(() => parseSipDate(getHeader(m, 'date') as string));
  },
  'regbadct.dat': (tt) => validatorFails(tt, 'regbadct.dat', 400, /<>/),
  'badaspec.dat': (tt) => validatorFails(tt, 'badaspec.dat', 400, /addr-spec/),
  'baddn.dat': (tt) => validatorFails(tt, 'baddn.dat', 400, /display name/),
  'badvers.dat': (tt) => {
    const p = parseFails(tt, 'badvers.dat', 505);
    answerable(tt, p, 505);
  },
  'mismatch01.dat': (tt) => validatorFails(tt, 'mismatch01.dat', 400, /CSeq method/),
  'mismatch02.dat': (tt) => validatorFails(tt, 'mismatch02.dat', 400, /CSeq method/),
  'bigcode.dat': (tt) => {
    const p = parseFails(tt, 'bigcode.dat', 400, /Status-Code/);
    tt.equal(p?.kind, 'response', 'a response: discard, do not answer');
  },

  // 3.2 / 3.3 semantic
  'badbranch.dat': (tt) => {
    const m = validReq(tt, 'badbranch.dat');
    const via = parseVia(getHeader(m, 'via') as string);
    tt.equal(via.branch, 'z9hG4bK');
    tt.equal(isRfc3261Branch(via.branch), false, 'treated as an RFC 2543 transaction');
  },
  'insuf.dat': (tt) => validatorFails(tt, 'insuf.dat', 400, /Missing/),
  'unkscm.dat': (tt) => validatorFails(tt, 'unkscm.dat', 416),
  'novelsc.dat': (tt) => {
    const m = validatorFails(tt, 'novelsc.dat', 416);
    tt.equal(validateRequest(m, { uriSchemes: ['sip', 'soap.beep'] }), null, 'accepted where the scheme is served');
  },
  'unksm2.dat': (tt) => {
    const m = validReq(tt, 'unksm2.dat');
    tt.same(na(m, 'to').uri, { kind: 'other', scheme: 'isbn', value: '2983792873' });
    tt.same(na(m, 'from').uri, { kind: 'other', scheme: 'http', value: '//www.example.com' });
    tt.same(na(m, 'contact').uri, { kind: 'other', scheme: 'name', value: 'John_Smith' });
  },
  'bext01.dat': (tt) => {
    const m = validReq(tt, 'bext01.dat');
    tt.same(getHeaderValues(m, 'require'), ['nothingSupportsThis', 'nothingSupportsThisEither']);
    tt.same(getHeaderValues(m, 'proxy-require'), ['noProxiesSupportThis', 'norDoAnyProxiesSupportThis']);
  },
  'invut.dat': (tt) => {
    const m = validReq(tt, 'invut.dat');
    tt.equal(getHeader(m, 'content-type'), 'application/unknownformat');
    tt.equal(m.body.length, 40);
  },
  'regaut01.dat': (tt) => {
    const m = validReq(tt, 'regaut01.dat');
    tt.equal(getHeader(m, 'authorization'), 'NoOneKnowsThisScheme opaque-data=here');
    tt.equal(getHeader(m, 'content-length'), '0');
  },
  'multi01.dat': (tt) => validatorFails(tt, 'multi01.dat', 400, /Multiple/),
  'mcl01.dat': (tt) => answerable(tt, parseFails(tt, 'mcl01.dat', 400, /Multiple Content-Length/), 400),
  'bcast.dat': (tt) => {
    const m = res(tt, 'bcast.dat');
    tt.equal(validateResponse(m), null);
    const vias = getHeaders(m, 'via').map(parseVia);
    tt.equal(vias.length, 2);
    tt.equal(vias[1].host, '255.255.255.255', 'broadcast Via readable (the proxy drops it)');
  },
  'zeromf.dat': (tt) => {
    const m = validReq(tt, 'zeromf.dat');
    tt.equal(parseMaxForwards(getHeader(m, 'max-forwards') as string), 0);
  },
  'cparam01.dat': (tt) => {
    const m = validReq(tt, 'cparam01.dat');
    const c = na(m, 'contact');
    tt.equal(c.bracketed, false);
    tt.equal(formatUri(c.uri), 'sip:+19725552222@gw1.example.net', 'no URI parameter');
    tt.same(c.params, [{ name: 'unknownparam', value: null, quoted: false }], 'header parameter');
  },
  'cparam02.dat': (tt) => {
    const m = validReq(tt, 'cparam02.dat');
    const c = na(m, 'contact');
    tt.same(sipUri(c.uri).params, [{ name: 'unknownparam', value: null }], 'URI parameter');
    tt.same(c.params, []);
  },
  'regescrt.dat': (tt) => {
    const m = validReq(tt, 'regescrt.dat');
    const u = sipUri(na(m, 'M').uri);
    tt.same(u.headers, [{ name: 'Route', value: '%3Csip:sip.example.com%3E' }]);
    tt.equal(unescapeUriPart(u.headers[0].value), '<sip:sip.example.com>');
    tt.equal(formatUri(u), 'sip:user@example.com?Route=%3Csip:sip.example.com%3E');
  },
  'sdp01.dat': (tt) => {
    const m = validReq(tt, 'sdp01.dat');
    tt.same(getHeaderValues(m, 'accept'), ['text/nobodyKnowsThis']);
  },
  'inv2543.dat': (tt) => {
    const m = validReq(tt, 'inv2543.dat');
    tt.equal(m.body.length, 105, 'no Content-Length: body is the rest of the datagram');
    tt.equal(countHeaders(m, 'max-forwards'), 0);
    tt.equal(parseVia(getHeader(m, 'via') as string).branch, null);
    tt.equal(getParam(na(m, 'from').params, 'tag'), undefined, 'no From tag');
    tt.equal(uriParam(sipUri(na(m, 'record-route').uri), 'maddr'), 'ss1.example.com');
    tt.equal(validateRequest(m, { requireMaxForwards: true })?.status, 400, 'strict mode requires Max-Forwards');
  },
};

t.test('RFC 4475 torture messages (index.tsv)', async (t) => {
  const rows = readFileSync(join(DIR, 'index.tsv'), 'utf8')
    .split('\n')
    .slice(1)
    .filter((l) => l.trim() !== '')
    .map((l) => l.split('\t'));
  t.ok(rows.length >= 49, 'index lists the fixtures');
  const seen = new Set<string>();
  for (const [file, section, title, kind, expected] of rows) {
    seen.add(file);
    t.test(`${file} (${section} ${title}) [${kind}] ${expected}`, async (tt) => {
      const check = CHECKS[file];
      tt.ok(check, 'has a check');
      if (check) check(tt);
    });
  }
  t.same(Object.keys(CHECKS).filter((f) => !seen.has(f)), [], 'every check has a fixture');
});

// ---------------------------------------------------------------------------
// unit tests

const REGISTER =
  'REGISTER sip:registrar.example.com SIP/2.0\r\n' +
  'Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK776asdhds;rport\r\n' +
  'Max-Forwards: 70\r\n' +
  'To: Bob <sip:bob@example.com>\r\n' +
  'From: Bob <sip:bob@example.com>;tag=456248\r\n' +
  'Call-ID: 843817637684230@998sdasdh09\r\n' +
  'CSeq: 1826 REGISTER\r\n' +
  'Contact: <sip:bob@192.0.2.10:5060;transport=udp>;expires=3600;+sip.instance="<urn:uuid:00000000-0000-1000-8000-000A95A0E128>";reg-id=1\r\n' +
  'Content-Length: 0\r\n' +
  '\r\n';

t.test('compact header forms', async (t) => {
  const map: Record<string, string> = {
    i: 'call-id',
    m: 'contact',
    e: 'content-encoding',
    l: 'content-length',
    c: 'content-type',
    f: 'from',
    s: 'subject',
    k: 'supported',
    t: 'to',
    v: 'via',
    o: 'event',
    u: 'allow-events',
    r: 'refer-to',
    b: 'referred-by',
    x: 'session-expires',
    y: 'identity',
    a: 'accept-contact',
    j: 'reject-contact',
    d: 'request-disposition',
  };
  for (const [c, full] of Object.entries(map)) {
    t.equal(headerKey(c), full, `${c} -> ${full}`);
    t.equal(headerKey(c.toUpperCase()), full, `${c.toUpperCase()} -> ${full}`);
  }
  t.equal(headerKey('CALL-id'), 'call-id');
  t.equal(headerKey('X-Custom'), 'x-custom');
  const m = parseOk(
    t,
    'OPTIONS sip:a@example.com SIP/2.0\r\nv: SIP/2.0/UDP h.example.com;branch=z9hG4bK1\r\nf: <sip:b@example.com>;tag=1\r\nt: sip:a@example.com\r\n' +
      'i: abc@h\r\nCSeq: 1 OPTIONS\r\nk: path, gruu\r\nm: <sip:b@h.example.com>\r\no: presence\r\nc: text/plain\r\nl: 2\r\n\r\nhi',
  );
  t.equal(getHeader(m, 'Call-ID'), 'abc@h');
  t.equal(getHeader(m, 'FROM'), '<sip:b@example.com>;tag=1');
  t.same(getHeaderValues(m, 'supported'), ['path', 'gruu']);
  t.equal(getHeader(m, 'event'), 'presence');
  t.equal(m.body.toString(), 'hi');
  t.equal(validateRequest(m as SipRequest), null);
});

t.test('folding and LWS', async (t) => {
  const m = parseOk(
    t,
    'OPTIONS sip:a@example.com SIP/2.0\r\n' +
      'Subject:   first\r\n' +
      '\t second  \r\n' +
      '   third\r\n' +
      'X-Empty:\r\n' +
      'X-Later:\r\n' +
      ' value\r\n' +
      'Via   :\t SIP/2.0/UDP h.example.com;branch=z9hG4bK1\r\n' +
      'Content-Length: 0\r\n\r\n',
  );
  t.equal(getHeader(m, 'subject'), 'first second third', 'continuations joined by one SP');
  t.equal(getHeader(m, 'x-empty'), '');
  t.equal(getHeader(m, 'x-later'), 'value', 'value entirely on a continuation line');
  t.equal(getHeader(m, 'via'), 'SIP/2.0/UDP h.example.com;branch=z9hG4bK1', 'WS before the colon and after it');
  t.same(
    m.headers.map((h) => h.name),
    ['Subject', 'X-Empty', 'X-Later', 'Via', 'Content-Length'],
  );

  const fail = (s: string, re: RegExp) => {
    const r = parseMessage(Buffer.from(s, 'latin1'), { stream: false });
    t.equal(r.ok, false, `rejects ${JSON.stringify(s.slice(0, 40))}`);
    if (!r.ok) {
      t.equal(r.error.status, 400);
      t.match(r.error.detail, re);
    }
  };
  fail('OPTIONS sip:a@b SIP/2.0\r\n Via: x\r\n\r\n', /Continuation/);
  fail('OPTIONS sip:a@b SIP/2.0\r\nVia x\r\n\r\n', /Malformed header line/);
  fail('OPTIONS sip:a@b SIP/2.0\r\nMax Forwards: 1\r\n\r\n', /header name/);
  fail('OPTIONS sip:a@b SIP/2.0\r\n\xc1llow: INVITE\r\n\r\n', /header name/);
  fail('OPTIONS sip:a@b SIP/2.0\r\nAllow\u00e9: INVITE\r\n\r\n', /header name/);
  fail('OPTIONS sip:a@b SIP/2.0\r\nVia: a\nTo: b\r\n\r\n', /Bare LF/);
  fail('OPTIONS sip:a@b SIP/2.0\r\nVia: a\rTo: b\r\n\r\n', /Bare CR/);
  fail('OPTIONS sip:a@b SIP/2.0\r\nContent-Length: 13, 5\r\n\r\n', /Content-Length/);
  fail('OPTIONS sip:a@b SIP/2.0\r\nContent-Length: 99999999999999999999\r\n\r\n', /Content-Length/);
  fail('OPTIONS sip:a@b SIP/2.0\r\nl: 1\r\n\r\n', /larger/);
  fail('OPTIONS sip:a@b SIP/2.0\r\nVia: a', /Incomplete/);
  fail('\r\n\r\n', /Empty/);
});

t.test('start lines', async (t) => {
  const ok = (line: string) => parseOk(t, line + '\r\nContent-Length: 0\r\n\r\n');
  const r = ok('SIP/2.0 180 Ringing') as SipResponse;
  t.same([r.kind, r.status, r.reason], ['response', 180, 'Ringing']);
  t.equal((ok('SIP/2.0 404 Not  Found here ') as SipResponse).reason, 'Not  Found here ', 'reason kept verbatim');
  t.equal((ok('sip/2.0 200 OK') as SipResponse).version, 'SIP/2.0', '"SIP" is case-insensitive');
  t.equal((ok('INVITE sip:a@b sip/2.0') as SipRequest).version, 'SIP/2.0');
  t.equal(parseOk(t, '\r\n\r\nOPTIONS sip:a@b SIP/2.0\r\n\r\n').kind, 'request', 'leading CRLFs skipped');
  const st = (line: string) => {
    const p = parseMessage(Buffer.from(line + '\r\nContent-Length: 0\r\n\r\n', 'latin1'), { stream: false });
    return p.ok ? 0 : p.error.status;
  };
  t.equal(st('SIP/3.0 200 OK'), 505);
  t.equal(st('INVITE sip:a@b SIP/2.1'), 505);
  t.equal(st('INVITE sip:a@b HTTP/1.1'), 400);
  t.equal(st('SIP/2.0 2000 OK'), 400);
  t.equal(st('SIP/2.0 099 Low'), 400);
  t.equal(st('SIP/2.0 7xx Bad'), 400);
  t.equal(st('INVITE sip:a@b'), 400);
  t.equal(st('INV\u00e9TE sip:a@b SIP/2.0'), 400, 'method must be a token');
  t.equal(st('INVITE sip:a@b\tSIP/2.0'), 400);
  t.equal(st('INVITE sip:a@b SIP/2.0 '), 400);
});

t.test('list splitting', async (t) => {
  t.same(splitHeaderList('a, b ,c'), ['a', 'b', 'c']);
  t.same(splitHeaderList('"Doe, John" <sip:j@x>;tag=1, <sip:k@y>'), ['"Doe, John" <sip:j@x>;tag=1', '<sip:k@y>']);
  t.same(splitHeaderList('<sip:a,b@x;p=1,2>, <sip:c@y>'), ['<sip:a,b@x;p=1,2>', '<sip:c@y>'], 'commas inside <>');
  t.same(splitHeaderList('"a \\" , b" <sip:x@y>, z'), ['"a \\" , b" <sip:x@y>', 'z'], 'escaped quote inside quotes');
  t.same(splitHeaderList(',,'), ['', '', '']);
  const list = parseNameAddrList('"Doe, John" <sip:j@x.com>;tag=1, sip:k@y.com');
  t.equal(list.length, 2);
  t.equal(list[0].displayName, 'Doe, John');
  t.equal(list[1].bracketed, false);
  t.throws(() => parseNameAddrList('<sip:a@x.com>,,<sip:b@x.com>'));
});

t.test('a To or From tag read without parsing the URI agrees with parseNameAddr', async (t) => {
  const values = [
    'Bob <sip:bob@b.test>;tag=123abc',
    '"Doe; tag=fake <x>" <sip:j@x.com;tag=uri-param>;tag=real',
    '<sip:a@b.com;transport=tls>',
    'sip:a@b.com;tag=1;x=2',
    'sip:a@b.com',
    '<sip:a@b.com>;x ; TAG = 7',
    '<sip:a@b.com>;tag',
    'Alice Smith <sip:a@b.com> ;tag=z',
    '"" <tel:+1-201-555-0123>;tag=t',
  ];
  for (const v of values) t.equal(nameAddrParam(v, 'tag'), getParam(parseNameAddr(v).params, 'tag'), v);
  t.equal(nameAddrParam('"Doe; tag=fake <x>" <sip:j@x.com;tag=uri-param>;tag=real', 'tag'), 'real', 'not the display name\'s nor the URI\'s');
  t.throws(() => nameAddrParam('<sip:a@b.com;tag=1', 'tag'), 'an unterminated < throws');
});

t.test('name-addr, contact params', async (t) => {
  const m = parseOk(t, REGISTER);
  const c = parseContact(getHeader(m, 'contact') as string);
  if (c === '*') throw new Error('unexpected *');
  t.equal(getParam(c[0].params, 'expires'), '3600');
  t.equal(parseExpires(getParam(c[0].params, 'expires') as string), 3600);
  t.equal(getParam(c[0].params, '+sip.instance'), '<urn:uuid:00000000-0000-1000-8000-000A95A0E128>', 'quoted value unquoted');
  t.equal(c[0].params[1].quoted, true);
  t.equal(getParam(c[0].params, 'reg-id'), '1');
  t.equal(uriParam(sipUri(c[0].uri), 'transport'), 'udp');
  t.equal(getParam(c[0].params, 'q'), undefined);
  t.equal(
    formatNameAddr(c[0]),
    '<sip:bob@192.0.2.10:5060;transport=udp>;expires=3600;+sip.instance="<urn:uuid:00000000-0000-1000-8000-000A95A0E128>";reg-id=1',
  );
  t.equal(parseContact(' * '), '*');
  t.equal(formatNameAddr(parseNameAddr('"A \\"q\\" \\\\ b" <sip:a@b.com>;tag=x')), '"A \\"q\\" \\\\ b" <sip:a@b.com>;tag=x');
  t.equal(formatNameAddr(parseNameAddr('Alice Smith<sip:a@b.com>')), 'Alice Smith <sip:a@b.com>');
  t.equal(formatNameAddr(parseNameAddr('Alice  Smith <sip:a@b.com>')), '"Alice  Smith" <sip:a@b.com>');
  t.equal(formatNameAddr(parseNameAddr('sip:a@b.com;tag=1')), '<sip:a@b.com>;tag=1');
  t.equal(parseNameAddr('"" <sip:a@b.com>').displayName, '');
  t.equal(parseNameAddr('<sip:a@b.com>').displayName, null);
  t.equal(parseNameAddr('tel:+1-201-555-0123').uri.kind, 'other');
  for (const bad of [
    '',
    '"unterminated <sip:a@b.com>',
    '< sip:a@b.com>',
    '<sip:a@b.com',
    'sip:a@b.com?x=y',
    'Bell, Alexander <sip:a@b.com>',
    '"x" sip:a@b.com',
    '<sip:a@b.com>;',
    '<sip:a@b.com>;tag=',
    '<sip:a@b.com> x',
    '<sip:a@b.com>, <sip:c@d.com>',
  ]) {
    t.throws(() => parseNameAddr(bad), SipParseError, `rejects ${JSON.stringify(bad)}`);
  }
  t.throws(() => parseNameAddrList('sip:a@b.com', { requireNameAddr: true }), 'Route needs <>');
});

t.test('SIP URIs', async (t) => {
  const u = parseSipUri('sips:alice:secret@[2001:db8::10]:5061;transport=tcp;lr;maddr=[::1]?Subject=hi%20there&Priority=urgent');
  t.same(u, {
    kind: 'sip',
    scheme: 'sips',
    user: 'alice',
    password: 'secret',
    host: '[2001:db8::10]',
    port: 5061,
    params: [
      { name: 'transport', value: 'tcp' },
      { name: 'lr', value: null },
      { name: 'maddr', value: '[::1]' },
    ],
    headers: [
      { name: 'Subject', value: 'hi%20there' },
      { name: 'Priority', value: 'urgent' },
    ],
  });
  t.equal(formatUri(u), 'sips:alice:secret@[2001:db8::10]:5061;transport=tcp;lr;maddr=[::1]?Subject=hi%20there&Priority=urgent');
  t.equal(parseSipUri('SIP:example.com').scheme, 'sip');
  t.equal(parseSipUri('sip:example.com.').host, 'example.com.');
  t.equal(parseSipUri('sip:192.0.2.1:0').port, 0);
  t.same(parseUri('tel:+358-555-1234567;postd=pp22'), { kind: 'other', scheme: 'tel', value: '+358-555-1234567;postd=pp22' });
  for (const bad of [
    'sip:',
    'sip:@example.com',
    'sip:user@',
    'sip:user@exa mple.com',
    'sip:user@-example.com',
    'sip:user@example..com',
    'sip:user@[::1',
    'sip:user@[zz::1]',
    'sip:user@example.com:65536',
    'sip:user@example.com:',
    'sip:user@example.com;',
    'sip:user@example.com;a=',
    'sip:us%zzer@example.com',
    'sip:us"er@example.com',
    'sip:user@example.com?',
    'sip:user@example.com?a',
    'sip:user@example.com>',
    '<sip:user@example.com>',
    '1sip:x',
    ':x',
    'nocolon',
    'http:',
    'http:a b',
  ]) {
    t.throws(() => parseUri(bad), SipParseError, `rejects ${JSON.stringify(bad)}`);
  }
  t.throws(() => parseSipUri('tel:+1'), 'tel is not a SIP URI');
});

t.test('URI comparison (RFC 3261 19.1.4)', async (t) => {
  const eq: Array<[string, string]> = [
    ['sip:%61lice@atlanta.com;transport=TCP', 'sip:alice@AtLanTa.CoM;Transport=tcp'],
    ['sip:carol@chicago.com', 'sip:carol@chicago.com;newparam=5'],
    ['sip:carol@chicago.com', 'sip:carol@chicago.com;security=on'],
    ['sip:carol@chicago.com', 'sip:carol@chicago.com;security=off'],
    ['sip:biloxi.com;transport=tcp;method=REGISTER?to=sip:bob%40biloxi.com', 'sip:biloxi.com;method=REGISTER;transport=tcp?to=sip:bob%40biloxi.com'],
    ['sip:alice@atlanta.com?subject=project%20x&priority=urgent', 'sip:alice@atlanta.com?priority=urgent&subject=project%20x'],
    ['sip:a%3ab@x.com', 'sip:a%3Ab@x.com'],
    ['sip:x.com;%6C%72', 'sip:x.com;lr'],
    ['tel:+1%2D555', 'TEL:+1-555'],
  ];
  for (const [a, b] of eq) {
    t.ok(uriEquals(a, b), `${a} == ${b}`);
    t.ok(uriEquals(b, a), `${b} == ${a}`);
  }
  const ne: Array<[string, string]> = [
    ['SIP:ALICE@AtLanTa.CoM;Transport=udp', 'sip:alice@AtLanTa.CoM;Transport=UDP'],
    ['sip:bob@biloxi.com', 'sip:bob@biloxi.com:5060'],
    ['sip:bob@biloxi.com', 'sip:bob@biloxi.com;transport=udp'],
    ['sip:bob@biloxi.com', 'sip:bob@biloxi.com:6000;transport=tcp'],
    ['sip:carol@chicago.com', 'sip:carol@chicago.com?Subject=next%20meeting'],
    ['sip:bob@phone21.boxesbybob.com', 'sip:bob@192.0.2.4'],
    ['sip:carol@chicago.com;security=on', 'sip:carol@chicago.com;security=off'],
    ['sip:a@x.com', 'sips:a@x.com'],
    ['sip:x.com', 'sip:a@x.com'],
    ['sip:a:p@x.com', 'sip:a@x.com'],
    ['sip:a@x.com;user=phone', 'sip:a@x.com'],
    ['sip:a@x.com;maddr=1.2.3.4', 'sip:a@x.com'],
    ['sip:a;b@x.com', 'sip:a%3Bb@x.com'],
    ['sip:a@x.com', 'not a uri'],
  ];
  for (const [a, b] of ne) {
    t.notOk(uriEquals(a, b), `${a} != ${b}`);
    t.notOk(uriEquals(b, a), `${b} != ${a}`);
  }
  t.equal(normalizeEscapes('%61%3a%25%7e'), 'a%3A%25~');
  t.equal(unescapeUriPart('%41%zz%4'), 'A%zz%4', 'invalid escapes left alone');
});

t.test('Via', async (t) => {
  const v = parseVia('SIP / 2.0 / udp [2001:db8::9]:5070 ;branch=z9hG4bK1 ;received=192.0.2.1;rport=5071;ttl=16;maddr=224.2.0.1');
  t.same(
    [v.protocol, v.version, v.transport, v.host, v.port, v.branch, v.received, v.rport, v.hasRport, v.ttl, v.maddr],
    ['SIP', '2.0', 'UDP', '[2001:db8::9]', 5070, 'z9hG4bK1', '192.0.2.1', 5071, true, 16, '224.2.0.1'],
  );
  t.equal(formatVia(v), 'SIP/2.0/UDP [2001:db8::9]:5070;branch=z9hG4bK1;received=192.0.2.1;rport=5071;ttl=16;maddr=224.2.0.1');
  const w = parseVia('SIP/2.0/TCP host.example.com : 5060;rport');
  t.same([w.port, w.hasRport, w.rport, w.branch], [5060, true, null, null]);
  t.equal(parseVia('SIP/2.0/UDP h.example.com;received=2001:db8::1').received, '2001:db8::1');
  t.equal(isRfc3261Branch(newBranch()), true);
  for (const bad of [
    'SIP/2.0/UDP',
    'SIP/2.0 h.example.com',
    'SIP/2.0/UDPh.example.com',
    'SIP/2.0/UDP h.example.com;ttl=256',
    'SIP/2.0/UDP h.example.com;received=example.com',
    'SIP/2.0/UDP h.example.com;rport=x',
    'SIP/2.0/UDP h.example.com;branch',
    'SIP/2.0/UDP h.example.com:99999',
    'SIP/2.0/UDP h.example.com extra',
  ]) {
    t.throws(() => parseVia(bad), SipParseError, `rejects ${bad}`);
  }
  t.throws(() => parseViaList('SIP/2.0/UDP a.example.com, '), 'empty list element');
});

t.test('scalars and Date', async (t) => {
  t.same(parseCSeq('4294967295 INVITE'), { seq: 4294967295, method: 'INVITE' });
  t.throws(() => parseCSeq('4294967296 INVITE'));
  t.throws(() => parseCSeq('1INVITE'));
  t.throws(() => parseCSeq('-1 INVITE'));
  t.throws(() => parseCSeq('1 INVITE x'));
  t.equal(parseMaxForwards('255'), 255);
  t.throws(() => parseMaxForwards('256'));
  t.throws(() => parseMaxForwards('-1'));
  t.throws(() => parseMaxForwards(''));
  t.equal(parseExpires('4294967295'), 4294967295);
  t.equal(parseExpires('4294967296'), null);
  t.equal(parseExpires('1e3'), null);
  t.equal(parseContentLength('00012'), 12);
  t.throws(() => parseContentLength('+1'));
  t.equal(parseSipDate('Sat, 13 Nov 2010 23:29:00 GMT').toISOString(), '2010-11-13T23:29:00.000Z');
  for (const bad of ['Fri, 01 Jan 2010 16:00:00 EST', 'Fri, 1 Jan 2010 16:00:00 GMT', 'Fri, 31 Feb 2010 16:00:00 GMT', 'Xyz, 01 Jan 2010 16:00:00 GMT', '2010-01-01T16:00:00Z', 'Fri, 01 Jan 2010 24:00:00 GMT']) {
    t.throws(() => parseSipDate(bad), SipParseError, bad);
  }
});

t.test('validateRequest', async (t) => {
  const base = parseOk(t, REGISTER) as SipRequest;
  t.equal(validateRequest(base), null);
  const variant = (edit: (m: SipRequest) => void): SipParseError | null => {
    const m = parseOk(t, REGISTER) as SipRequest;
    edit(m);
    return validateRequest(m);
  };
  t.equal(variant((m) => (m.version = 'SIP/3.0'))?.status, 505);
  for (const h of ['to', 'from', 'cseq', 'call-id', 'via']) {
    t.equal(variant((m) => removeHeaders(m, h))?.detail, `Missing ${{ to: 'To', from: 'From', cseq: 'CSeq', 'call-id': 'Call-ID', via: 'Via' }[h]} header`);
  }
  t.equal(variant((m) => removeHeaders(m, 'max-forwards')), null, 'Max-Forwards optional by default');
  t.equal(variant((m) => addHeader(m, 'i', 'other@h'))?.detail, 'Multiple Call-ID headers');
  t.equal(variant((m) => addHeader(m, 'Expires', '10'))?.status ?? 0, 0);
  t.equal(variant((m) => (addHeader(m, 'Expires', '10'), addHeader(m, 'Expires', '20')))?.detail, 'Multiple Expires headers');
  t.equal(variant((m) => setHeader(m, 'To', 'sip:a@b.com, sip:c@d.com'))?.status, 400);
  t.equal(variant((m) => setHeader(m, 'Call-ID', 'a b'))?.detail, 'Malformed Call-ID');
  t.equal(variant((m) => (m.uri = 'tel:+15551234')), null);
  t.equal(variant((m) => (m.uri = 'mailto:a@b.com'))?.status, 416);
  t.equal(variant((m) => (m.uri = 'sip:a@b.com?Route=x'))?.status, 400);
  t.equal(variant((m) => (m.uri = '<sip:a@b.com>'))?.status, 400);
  t.equal(variant((m) => (m.uri = 'sip:a@b..com'))?.status, 400);
  t.equal(variant((m) => setHeader(m, 'Contact', '*')), null, 'Contact * in REGISTER');
  t.equal(variant((m) => ((m.method = 'OPTIONS'), setHeader(m, 'CSeq', '1 OPTIONS'), setHeader(m, 'Contact', '*')))?.status, 400);
  t.equal(variant((m) => addHeader(m, 'Route', 'sip:p.example.com;lr'))?.status, 400, 'Route needs name-addr');
  t.equal(variant((m) => addHeader(m, 'Record-Route', '<sip:p1.example.com;lr>, <sip:p2.example.com;lr>')), null);
  t.equal(variant((m) => addHeader(m, 'Warning', '1812 overture "In Progress"'))?.status, 400);
  t.equal(variant((m) => addHeader(m, 'Warning', '399 example.com "Noise"')), null);
  t.equal(variant((m) => setHeader(m, 'Expires', 'garbage')), null, 'malformed Expires is left to the registrar (3600)');
});

t.test('validateResponse', async (t) => {
  const r = buildResponse(parseOk(t, REGISTER) as SipRequest, 200, 'OK', [['Contact', '<sip:bob@192.0.2.10:5060;transport=udp>;expires=3600']], { toTag: 'abc' });
  t.equal(validateResponse(r), null);
  const copy = parseOk(t, serializeMessage(r)) as SipResponse;
  t.equal(validateResponse(copy), null);
  removeHeaders(copy, 'via');
  t.equal(validateResponse(copy)?.detail, 'Missing Via header');
});

t.test('serializer round trip', async (t) => {
  const buf = Buffer.from(REGISTER, 'latin1');
  const m = parseOk(t, buf);
  t.ok(serializeMessage(m).equals(buf), 'canonical message serialises byte-exactly');

  for (const f of ['wsinv.dat', 'intmeth.dat', 'esc01.dat', 'longreq.dat', 'mpart01.dat', 'unreason.dat', 'escnull.dat']) {
    const a = parseOk(t, load(f));
    const out = serializeMessage(a);
    const b = parseOk(t, out);
    t.same(b.headers, a.headers, `${f}: headers survive`);
    t.ok(b.body.equals(a.body), `${f}: body survives`);
    t.ok(serializeMessage(b).equals(out), `${f}: second serialisation identical`);
  }
  const u = parseOk(t, load('unreason.dat'));
  t.match(serializeMessage(u).subarray(0, 20).toString('latin1'), /^SIP\/2\.0 200 = 2\*\*3/);

  // Content-Length always matches the body
  const x = parseOk(t, 'MESSAGE sip:a@b.com SIP/2.0\r\nl: 0\r\n\r\n');
  removeHeaders(x, 'content-length');
  x.body = Buffer.from('hello');
  const s = serializeMessage(x).toString('latin1');
  t.match(s, /\r\nContent-Length: 5\r\n\r\nhello$/);

  // header editing
  const e = parseOk(t, REGISTER);
  prependHeader(e, 'Via', 'SIP/2.0/UDP proxy.example.com;branch=z9hG4bKp1');
  t.equal(getHeaders(e, 'via')[0], 'SIP/2.0/UDP proxy.example.com;branch=z9hG4bKp1');
  t.equal(e.headers[0].key, 'via', 'new Via on top');
  setHeader(e, 'max-forwards', '69');
  t.equal(getHeader(e, 'max-forwards'), '69');
  t.equal(removeHeaders(e, 'via'), 2);
  const utf = utf8ToBinary('Ünïcödé');
  addHeader(e, 'Subject', utf);
  t.equal(binaryToUtf8(getHeader(parseOk(t, serializeMessage(e)), 'subject') as string), 'Ünïcödé', 'UTF-8 values round-trip');
});

t.test('buildResponse (RFC 3261 8.2.6)', async (t) => {
  const m = parseOk(
    t,
    'INVITE sip:bob@example.com SIP/2.0\r\n' +
      'Via: SIP/2.0/UDP p2.example.com;branch=z9hG4bK2\r\n' +
      'v: SIP/2.0/UDP p1.example.com;branch=z9hG4bK1, SIP/2.0/UDP ua.example.com;branch=z9hG4bK0;received=192.0.2.1\r\n' +
      'Max-Forwards: 68\r\n' +
      't: <sip:bob@example.com>\r\n' +
      'f: "Alice" <sip:alice@example.com>;tag=a1\r\n' +
      'i: call-1@ua\r\n' +
      'CSeq: 7 INVITE\r\n' +
      'Timestamp: 54\r\n' +
      'Content-Type: text/plain\r\n' +
      'Content-Length: 3\r\n\r\nabc',
  ) as SipRequest;
  const r = buildResponse(m, 486, 'Busy Here', [['Retry-After', '60']], { toTag: 'b2' });
  t.same(
    r.headers.map((h) => [h.name, h.value]),
    [
      ['Via', 'SIP/2.0/UDP p2.example.com;branch=z9hG4bK2'],
      ['v', 'SIP/2.0/UDP p1.example.com;branch=z9hG4bK1, SIP/2.0/UDP ua.example.com;branch=z9hG4bK0;received=192.0.2.1'],
      ['From', '"Alice" <sip:alice@example.com>;tag=a1'],
      ['To', '<sip:bob@example.com>;tag=b2'],
      ['Call-ID', 'call-1@ua'],
      ['CSeq', '7 INVITE'],
      ['Retry-After', '60'],
      ['Content-Length', '0'],
    ],
  );
  t.equal(
    serializeMessage(r).toString('latin1'),
    'SIP/2.0 486 Busy Here\r\n' +
      'Via: SIP/2.0/UDP p2.example.com;branch=z9hG4bK2\r\n' +
      'v: SIP/2.0/UDP p1.example.com;branch=z9hG4bK1, SIP/2.0/UDP ua.example.com;branch=z9hG4bK0;received=192.0.2.1\r\n' +
      'From: "Alice" <sip:alice@example.com>;tag=a1\r\n' +
      'To: <sip:bob@example.com>;tag=b2\r\n' +
      'Call-ID: call-1@ua\r\n' +
      'CSeq: 7 INVITE\r\n' +
      'Retry-After: 60\r\n' +
      'Content-Length: 0\r\n\r\n',
  );
  const trying = buildResponse(m, 100, 'Trying');
  t.equal(getParam(parseNameAddr(getHeader(trying, 'to') as string).params, 'tag'), undefined, 'no tag unless asked');
  t.equal(getHeader(trying, 'timestamp'), '54', 'Timestamp copied into 100');
  setHeader(m, 'To', '<sip:bob@example.com>;tag=existing');
  t.equal(getHeader(buildResponse(m, 200, 'OK', undefined, { toTag: 'new' }), 'to'), '<sip:bob@example.com>;tag=existing', 'existing tag kept');
  const withBody = buildResponse(m, 200, 'OK', [['Content-Type', 'text/plain']], { body: Buffer.from('xyz') });
  t.equal(getHeader(withBody, 'content-length'), '3');
  t.match(serializeMessage(withBody).toString('latin1'), /\r\n\r\nxyz$/);
  t.not(newTag(), newTag());
  t.ok(newTag().length >= 8);
});

// ---------------------------------------------------------------------------
// stream framer

function msgs(events: FramerEvent[]): SipMessage[] {
  return events.flatMap((e) => (e.type === 'message' ? [e.message] : []));
}

const MSG_A =
  'MESSAGE sip:a@example.com SIP/2.0\r\nVia: SIP/2.0/TCP h.example.com;branch=z9hG4bKa\r\nCall-ID: a@h\r\nCSeq: 1 MESSAGE\r\n' +
  'From: <sip:x@example.com>;tag=1\r\nTo: <sip:a@example.com>\r\nMax-Forwards: 70\r\nContent-Type: text/plain\r\nContent-Length: 11\r\n\r\nhello\r\n\r\nab';
const MSG_B = 'SIP/2.0 200 OK\r\nVia: SIP/2.0/TCP h.example.com;branch=z9hG4bKa\r\nCall-ID: a@h\r\nCSeq: 1 MESSAGE\r\nl: 0\r\n\r\n';

t.test('stream framer', async (t) => {
  t.test('message split over chunks (byte by byte)', async (t) => {
    const f = new SipStreamFramer();
    const all: FramerEvent[] = [];
    const buf = Buffer.from(MSG_A, 'latin1');
    for (let i = 0; i < buf.length; i++) {
      const ev = f.push(buf.subarray(i, i + 1));
      if (i < buf.length - 1) t.equal(ev.length, 0);
      all.push(...ev);
    }
    const ms = msgs(all);
    t.equal(ms.length, 1);
    t.equal(ms[0].body.toString('latin1'), 'hello\r\n\r\nab', 'body with CRLFCRLF inside taken by Content-Length');
    t.equal(f.bufferedBytes, 0);
  });

  t.test('head split from body, body split', async (t) => {
    const f = new SipStreamFramer();
    const cut = MSG_A.indexOf('\r\n\r\n') + 2;
    t.same(f.push(Buffer.from(MSG_A.slice(0, cut), 'latin1')), []);
    t.same(f.push(Buffer.from(MSG_A.slice(cut, cut + 5), 'latin1')), []);
    const ev = f.push(Buffer.from(MSG_A.slice(cut + 5), 'latin1'));
    t.equal(msgs(ev).length, 1);
  });

  t.test('two messages (and a partial third) in one chunk', async (t) => {
    const f = new SipStreamFramer();
    const ev = f.push(Buffer.from(MSG_A + MSG_B + MSG_A.slice(0, 30), 'latin1'));
    const ms = msgs(ev);
    t.equal(ms.length, 2);
    t.equal(ms[0].kind, 'request');
    t.equal(ms[1].kind, 'response');
    t.equal((ms[1] as SipResponse).status, 200);
    t.equal(f.bufferedBytes, 30);
    t.equal(msgs(f.push(Buffer.from(MSG_A.slice(30), 'latin1'))).length, 1);
  });

  t.test('CRLF keepalives', async (t) => {
    const f = new SipStreamFramer();
    t.same(f.push(Buffer.from('\r\n\r\n')), [{ type: 'keepalive' }], 'CRLFCRLF ping');
    t.same(f.push(Buffer.from('\r\n')), [], 'lone CRLF (pong) ignored');
    t.same(f.push(Buffer.from('\r')), []);
    t.same(f.push(Buffer.from('\n')), [{ type: 'keepalive' }], 'ping split over three chunks');
    const ev = f.push(Buffer.from('\r\n' + MSG_B + '\r\n\r\n' + MSG_B, 'latin1'));
    t.same(
      ev.map((e) => e.type),
      ['message', 'keepalive', 'message'],
    );
    t.equal(isKeepalive(Buffer.from('\r\n\r\n')), true);
    t.equal(isKeepalive(Buffer.from('\r\nX')), false);
  });

  t.test('missing Content-Length on a stream is fatal', async (t) => {
    const f = new SipStreamFramer();
    const noCl = MSG_B.replace('l: 0\r\n', '');
    const ev = f.push(Buffer.from(noCl + MSG_B, 'latin1'));
    t.equal(ev.length, 1);
    const e = ev[0];
    t.equal(e.type, 'error');
    if (e.type !== 'error') return;
    t.equal(e.fatal, true);
    t.equal(e.error.status, 400);
    t.match(e.error.detail, /Missing Content-Length/);
    t.equal(e.partial?.kind, 'response');
    t.equal(f.closed, true);
    t.same(f.push(Buffer.from(MSG_B, 'latin1')), [], 'dead after a fatal error');
    const r = parseMessage(Buffer.from(noCl, 'latin1'), { stream: true });
    t.equal(r.ok, false, 'parseMessage in stream mode agrees');
  });

  t.test('invalid or repeated Content-Length is fatal', async (t) => {
    for (const cl of ['Content-Length: -1\r\n', 'Content-Length: 1\r\nl: 1\r\n']) {
      const f = new SipStreamFramer();
      const ev = f.push(Buffer.from(MSG_B.replace('l: 0\r\n', cl), 'latin1'));
      t.equal(ev.length, 1);
      t.equal(ev[0].type === 'error' && ev[0].fatal, true);
    }
  });

  t.test('malformed message with a usable Content-Length is skipped', async (t) => {
    const f = new SipStreamFramer();
    const bad = 'INVITE  sip:a@example.com SIP/2.0\r\nVia: SIP/2.0/TCP h.example.com;branch=z9hG4bKq\r\nCall-ID: q@h\r\nCSeq: 2 INVITE\r\nContent-Length: 2\r\n\r\nxy';
    const ev = f.push(Buffer.from(bad + MSG_B, 'latin1'));
    t.equal(ev.length, 2);
    const e = ev[0];
    t.equal(e.type, 'error');
    if (e.type === 'error') {
      t.equal(e.fatal, false);
      t.equal(e.error.status, 400);
      t.equal(e.partial?.kind, 'request', 'can be answered with 400');
    }
    t.equal(ev[1].type, 'message', 'next message still framed');
    t.equal(f.closed, false);
  });

  t.test('random chunking keeps every message and body intact', async (t) => {
    let seed = 12345;
    const rnd = (n: number) => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      return seed % n;
    };
    const bodies: string[] = [];
    let stream = '';
    for (let k = 0; k < 60; k++) {
      const body = `body-${k}-` + 'x'.repeat(rnd(300)) + (k % 3 === 0 ? '\r\n\r\n' : '');
      bodies.push(body);
      if (k % 7 === 0) stream += '\r\n\r\n';
      stream += `MESSAGE sip:a@example.com SIP/2.0\r\nCall-ID: c${k}@h\r\nContent-Length: ${body.length}\r\n\r\n${body}`;
    }
    const all = Buffer.from(stream, 'latin1');
    for (const maxChunk of [1, 7, 64, 1000]) {
      const f = new SipStreamFramer();
      const got: SipMessage[] = [];
      let keepalives = 0;
      for (let i = 0; i < all.length; ) {
        const n = 1 + rnd(maxChunk);
        for (const e of f.push(Buffer.from(all.subarray(i, i + n)))) {
          if (e.type === 'message') got.push(e.message);
          else if (e.type === 'keepalive') keepalives++;
          else t.fail(e.error.message);
        }
        i += n;
      }
      t.equal(got.length, 60, `chunks up to ${maxChunk}: all messages`);
      t.equal(keepalives, 9, 'keepalives between messages');
      t.same(got.map((m) => m.body.toString('latin1')), bodies, 'bodies intact after later input');
      t.same(got.map((m) => getHeader(m, 'call-id')), bodies.map((_, k) => `c${k}@h`));
    }
  });

  t.test('one octet at a time stays linear', async (t) => {
    const body = 'y'.repeat(60000);
    const msg = Buffer.from(`MESSAGE sip:a@example.com SIP/2.0\r\nContent-Length: ${body.length}\r\n\r\n${body}`, 'latin1');
    const f = new SipStreamFramer();
    const t0 = Date.now();
    let got: SipMessage[] = [];
    for (let i = 0; i < msg.length; i++) got = got.concat(msgs(f.push(msg.subarray(i, i + 1))));
    t.equal(got.length, 1);
    t.equal(got[0].body.length, 60000);
    t.ok(Date.now() - t0 < 2000, `took ${Date.now() - t0} ms`);
  });

  t.test('garbage on the stream is fatal as soon as a line is seen', async (t) => {
    const f = new SipStreamFramer();
    t.same(f.push(Buffer.from([0x16, 0x03, 0x01, 0x02])), [], 'no line yet');
    const ev = f.push(Buffer.from('\x00\x01 binary\r\n', 'latin1'));
    t.equal(ev.length, 1);
    t.equal(ev[0].type === 'error' && ev[0].fatal, true);
    const g = new SipStreamFramer();
    t.same(g.push(Buffer.from('OPTIONS sip:a@b SIP/2.0\r\nVia: x\r\n')), [], 'a good first line waits for the rest');
  });

  t.test('bounded buffer', async (t) => {
    const f = new SipStreamFramer({ maxMessageSize: 256 });
    t.same(f.push(Buffer.from('OPTIONS sip:a@b SIP/2.0\r\nX: ' + 'a'.repeat(100))), []);
    const ev = f.push(Buffer.from('a'.repeat(200)));
    t.equal(ev.length, 1);
    t.equal(ev[0].type === 'error' && ev[0].error.status, 513);
    t.equal(f.closed, true);
    const g = new SipStreamFramer({ maxMessageSize: 256 });
    const big = g.push(Buffer.from('OPTIONS sip:a@b SIP/2.0\r\nContent-Length: 1000\r\n\r\n'));
    t.equal(big[0].type === 'error' && big[0].error.status, 513, 'declared body too large');
  });
});
