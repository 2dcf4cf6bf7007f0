// A small SIP user agent in Node, over UDP on loopback, for the call and abuse benchmarks: it
// registers phones (with digest when asked), answers OPTIONS, makes timed calls (INVITE, ACK and
// BYE along the recorded route), and tells when a server answers at all. Servers are at
// 127.0.0.1; the agent itself may sit at any loopback address, so a benchmark can have sources.
import { createSocket, type RemoteInfo, type Socket } from 'node:dgram';
import { randomBytes } from 'node:crypto';
import { getHeader, getHeaders, parseMessage, splitHeaderList, type SipRequest, type SipResponse } from '../sip/message.ts';
import { authorize } from '../sip/digest.ts';

const SDP = 'v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 6000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n';

/** 16 random hex digits, for tags, Call-IDs and branches. */
export function rnd(): string {
  return randomBytes(8).toString('hex');
}

/** A REGISTER as text, with a new branch: `via` is "UDP 127.0.0.1:5062" (transport and sent-by). */
export function registerText(o: { via: string; user: string; domain: string; contact: string; expires: number; callId: string; cseq: number; authorization?: string }): { text: string; branch: string } {
  const branch = 'z9hG4bK' + rnd();
  const text = [
    `REGISTER sip:${o.domain} SIP/2.0`,
    `Via: SIP/2.0/${o.via};rport;branch=${branch}`,
    'Max-Forwards: 70',
    `From: <sip:${o.user}@${o.domain}>;tag=${rnd()}`,
    `To: <sip:${o.user}@${o.domain}>`,
    `Call-ID: ${o.callId}`,
    `CSeq: ${o.cseq} REGISTER`,
    `Contact: <${o.contact}>`,
    `Expires: ${o.expires}`,
    ...(o.authorization === undefined ? [] : [`Authorization: ${o.authorization}`]),
    'Content-Length: 0',
    '',
    '',
  ].join('\r\n');
  return { text, branch };
}

interface Got {
  res: SipResponse;
  /** hrtime (ns) it arrived */
  at: bigint;
}

/** RFC 3261 T1 and T2 (ms): a request over UDP is sent again after T1, then twice as long each time, at most T2 apart. */
const T1 = 500;
const T2 = 4000;

export class Ua {
  private sock: Socket | null = null;
  port = 0;
  /** branch -> who waits for the final response */
  private readonly waiting = new Map<string, (g: Got) => void>();
  /** requests that reached this UA (other than OPTIONS, answered here) */
  onRequest: ((req: SipRequest, at: bigint, from: RemoteInfo) => void) | null = null;
  /** OPTIONS pings answered, with the time of the last one */
  options = 0;
  lastOptionsAt = 0n;

  /** `address`: where the agent sits (any of 127.0.0.0/8) */
  constructor(readonly address = '127.0.0.1') {}

  async open(): Promise<this> {
    const s = createSocket({ type: 'udp4', recvBufferSize: 4 << 20 });
    this.sock = s;
    s.on('message', (b, from) => this.onBytes(b, from));
    s.on('error', () => undefined);
    await new Promise<void>((r) => s.bind(0, this.address, () => r()));
    this.port = s.address().port;
    return this;
  }

  close(): void {
    this.sock?.close();
    this.sock = null;
    this.waiting.clear();
  }

  send(text: string | Buffer, port: number): void {
    this.sock?.send(typeof text === 'string' ? Buffer.from(text, 'latin1') : text, port, '127.0.0.1');
  }

  /**
   * Sends a request; resolves with its final response, or null after `timeoutMs`. With
   * `retransmit` it is sent again as a phone would over UDP (T1, doubling up to T2) until a
   * response (a provisional one too) arrives.
   */
  transact(text: string, branch: string, port: number, timeoutMs: number, retransmit = false): Promise<Got | null> {
    return new Promise((resolve) => {
      let again: NodeJS.Timeout | null = null;
      const t = setTimeout(() => {
        if (again !== null) clearTimeout(again);
        this.waiting.delete(branch);
        this.heard.delete(branch);
        resolve(null);
      }, timeoutMs);
      this.waiting.set(branch, (g) => {
        clearTimeout(t);
        if (again !== null) clearTimeout(again);
        this.heard.delete(branch);
        resolve(g);
      });
      this.send(text, port);
      if (!retransmit) return;
      const resend = (wait: number): void => {
        again = setTimeout(() => {
          if (!this.waiting.has(branch) || this.heard.has(branch)) return;
          this.send(text, port);
          resend(Math.min(2 * wait, T2));
        }, wait);
      };
      resend(T1);
    });
  }

  /** branches that had a provisional response (no more retransmissions for them) */
  private readonly heard = new Set<string>();

  private onBytes(b: Buffer, from: RemoteInfo): void {
    const at = process.hrtime.bigint();
    const r = parseMessage(b);
    if (!r.ok) return;
    const m = r.message;
    if (m.kind === 'response') {
      const via = getHeader(m, 'via') ?? '';
      const branch = /branch=([^;,\s]+)/.exec(via)?.[1] ?? '';
      if (m.status < 200) {
        if (this.waiting.has(branch)) this.heard.add(branch);
        return;
      }
      const w = this.waiting.get(branch);
      if (w === undefined) return;
      this.waiting.delete(branch);
      w({ res: m, at });
      return;
    }
    if (m.method === 'OPTIONS') {
      this.options++;
      this.lastOptionsAt = at;
      this.respond(m, 200, 'OK', from);
      return;
    }
    this.onRequest?.(m, at, from);
  }

  /** Answers a request where it came from (the Vias, From, To with a tag, Call-ID and CSeq copied). */
  respond(req: SipRequest, status: number, reason: string, to: RemoteInfo): void {
    const lines = [`SIP/2.0 ${status} ${reason}`];
    for (const v of getHeaders(req, 'via')) lines.push(`Via: ${v}`);
    const toHdr = getHeader(req, 'to') ?? '';
    lines.push(`From: ${getHeader(req, 'from') ?? ''}`, `To: ${/;\s*tag=/i.test(toHdr) ? toHdr : `${toHdr};tag=${this.port}`}`, `Call-ID: ${getHeader(req, 'call-id') ?? ''}`, `CSeq: ${getHeader(req, 'cseq') ?? ''}`, 'Content-Length: 0', '', '');
    this.send(lines.join('\r\n'), to.port);
  }

  /** REGISTER user@domain at `port` with `contact`; resolves with the status (0: no answer). */
  async register(port: number, user: string, domain: string, contact: string, expires: number, callId: string, cseq: number): Promise<number> {
    const { text, branch } = this.registerText(user, domain, contact, expires, callId, cseq);
    for (let attempt = 0; attempt < 3; attempt++) {
      const g = await this.transact(text, branch, port, 2000);
      if (g !== null) return g.res.status;
    }
    return 0;
  }

  /**
   * REGISTER with digest as a phone does it: the request, its challenge answered with
   * `password`, each sent again on T1 until answered or `timeoutMs` passes; the final status
   * (0: none in time).
   */
  async registerWithDigest(port: number, user: string, domain: string, password: string, expires: number, callId: string, cseq: number, timeoutMs: number): Promise<number> {
    const contact = `sip:${user}@${this.address}:${this.port}`;
    const first = this.registerText(user, domain, contact, expires, callId, cseq);
    const g = await this.transact(first.text, first.branch, port, timeoutMs, true);
    if (g === null || g.res.status !== 401) return g === null ? 0 : g.res.status;
    const ch = getHeaders(g.res, 'www-authenticate').find((c) => /algorithm=MD5\b/i.test(c)) ?? getHeader(g.res, 'www-authenticate') ?? '';
    const auth = authorize(ch, { user, password, method: 'REGISTER', uri: `sip:${domain}` });
    const second = this.registerText(user, domain, contact, expires, callId, cseq + 1, auth);
    const g2 = await this.transact(second.text, second.branch, port, timeoutMs, true);
    return g2 === null ? 0 : g2.res.status;
  }

  private registerText(user: string, domain: string, contact: string, expires: number, callId: string, cseq: number, authorization?: string): { text: string; branch: string } {
    return registerText({ via: `UDP ${this.address}:${this.port}`, user, domain, contact, expires, callId, cseq, authorization });
  }
}

/**
 * Resolves once the server `child` started answers an OPTIONS at 127.0.0.1:`port` (any final
 * response); fails when `child` exits first or nothing answers within `timeoutMs`.
 */
export interface CallResult {
  /** final status of the INVITE (0: none) */
  status: number;
  /** INVITE sent to final response, ms */
  ms: number;
  /** the whole call (BYE answered with 200) completed */
  ok: boolean;
}

function hostPort(uri: string): { port: number } | null {
  const m = /sip:(?:[^@;>]*@)?127\.0\.0\.1:(\d+)/.exec(uri);
  return m === null ? null : { port: Number(m[1]) };
}

/**
 * One call from `ua` to `ruri`, sent to 127.0.0.1:`port`: INVITE, and on a 2xx ACK and BYE
 * along the route set the 200 recorded (Record-Route reversed); on a failure, its ACK.
 */
export async function call(ua: Ua, port: number, ruri: string, fromUser: string, fromDomain: string, timeoutMs = 4000, retransmit = false): Promise<CallResult> {
  const branch = 'z9hG4bK' + rnd();
  const callId = rnd() + '@bench';
  const fromTag = rnd();
  const from = `<sip:${fromUser}@${fromDomain}>;tag=${fromTag}`;
  const contact = `<sip:${fromUser}@${ua.address}:${ua.port}>`;
  const invite = [
    `INVITE ${ruri} SIP/2.0`,
    `Via: SIP/2.0/UDP ${ua.address}:${ua.port};rport;branch=${branch}`,
    'Max-Forwards: 70',
    `From: ${from}`,
    `To: <${ruri}>`,
    `Call-ID: ${callId}`,
    'CSeq: 1 INVITE',
    `Contact: ${contact}`,
    'Content-Type: application/sdp',
    `Content-Length: ${SDP.length}`,
    '',
    SDP,
  ].join('\r\n');
  const t0 = process.hrtime.bigint();
  const g = await ua.transact(invite, branch, port, timeoutMs, retransmit);
  if (g === null) return { status: 0, ms: NaN, ok: false };
  const ms = Number(g.at - t0) / 1e6;
  const res = g.res;
  const to = getHeader(res, 'to') ?? `<${ruri}>`;
  if (res.status >= 300) {
    // the ACK of a failure: same branch, same next hop (RFC 3261 17.1.1.3)
    ua.send([`ACK ${ruri} SIP/2.0`, `Via: SIP/2.0/UDP ${ua.address}:${ua.port};rport;branch=${branch}`, 'Max-Forwards: 70', `From: ${from}`, `To: ${to}`, `Call-ID: ${callId}`, 'CSeq: 1 ACK', 'Content-Length: 0', '', ''].join('\r\n'), port);
    return { status: res.status, ms, ok: false };
  }
  // the route set: Record-Route reversed; the remote target: the callee's Contact
  const rr: string[] = [];
  for (const h of getHeaders(res, 'record-route')) rr.push(...splitHeaderList(h));
  const routes = rr.reverse();
  const target = /<([^>]+)>/.exec(getHeader(res, 'contact') ?? '')?.[1] ?? ruri;
  const next = hostPort(routes.length > 0 ? routes[0] : target);
  if (next === null) return { status: res.status, ms, ok: false };
  const inDialog = (method: string, cseq: number, br: string): string =>
    [`${method} ${target} SIP/2.0`, `Via: SIP/2.0/UDP ${ua.address}:${ua.port};rport;branch=${br}`, 'Max-Forwards: 70', ...routes.map((r) => `Route: ${r}`), `From: ${from}`, `To: ${to}`, `Call-ID: ${callId}`, `CSeq: ${cseq} ${method}`, `Contact: ${contact}`, 'Content-Length: 0', '', ''].join('\r\n');
  ua.send(inDialog('ACK', 1, 'z9hG4bK' + rnd()), next.port);
  const byeBranch = 'z9hG4bK' + rnd();
  const bye = await ua.transact(inDialog('BYE', 2, byeBranch), byeBranch, next.port, timeoutMs, retransmit);
  return { status: res.status, ms, ok: bye !== null && bye.res.status === 200 };
}
