// A minimal SIP user agent for tests: sends requests over UDP, TCP or TLS, collects what comes back,
// answers the registrar's OPTIONS keepalives (or not, when told to play dead), and computes
// digest credentials (SHA-256 too, which no phone on this machine does).
import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { connect, type Socket } from 'node:net';
import { connect as tlsConnect, type TLSSocket } from 'node:tls';
import { randomBytes } from 'node:crypto';
import { SipStreamFramer, getHeader, getHeaders, parseMessage, type SipMessage, type SipRequest, type SipResponse } from '../sip/message.ts';
import { authorize } from '../sip/digest.ts';
import { buildResponse, serializeMessage } from '../sip/serialize.ts';
import type { Test } from 'tap';
import { SipService, type SipServiceOptions, type UserDirectory } from '../sip/service.ts';

export interface RegisterOpts {
  user: string;
  domain: string;
  /** contact URI; default sip:USER@LOCALADDRESS:LOCALPORT */
  contact?: string | string[];
  /** raw Contact header values (override `contact`) */
  contactHeaders?: string[];
  expires?: number;
  callId?: string;
  cseq?: number;
  branch?: string;
  extra?: string[];
  authorization?: string;
  requestUri?: string;
  userAgent?: string;
}

export class TestPhone {
  readonly received: SipMessage[] = [];
  private udp?: UdpSocket;
  private tcp?: Socket;
  private framer = new SipStreamFramer();
  port = 0;
  /** answer OPTIONS from the registrar (false: play dead) */
  answerOptions = true;
  options = 0;
  private waiters: Array<{ pred: (m: SipMessage) => boolean; resolve: (m: SipMessage) => void }> = [];
  private seq = 1;
  readonly callId = 'c' + randomBytes(6).toString('hex');

  constructor(
    readonly server: { host: string; port: number },
    readonly proto: 'udp' | 'tcp' | 'tls' = 'udp',
    /** the phone's own address: any of 127.0.0.0/8 is this machine, so tests can have many sources */
    readonly localAddress = '127.0.0.1',
  ) {}

  async open(): Promise<this> {
    if (this.proto === 'udp') {
      const s = createSocket('udp4');
      this.udp = s;
      s.on('message', (b) => this.onBytes(b));
      await new Promise<void>((r) => s.bind(0, this.localAddress, () => r()));
      this.port = s.address().port;
    } else {
      // over TLS the node's certificate is taken as shown (a phone checking it is the phone's business)
      const c: Socket =
        this.proto === 'tls'
          ? tlsConnect({ socket: connect({ host: this.server.host, port: this.server.port, localAddress: this.localAddress }), rejectUnauthorized: false })
          : connect({ host: this.server.host, port: this.server.port, localAddress: this.localAddress });
      this.tcp = c;
      await new Promise<void>((r, j) => {
        c.once(this.proto === 'tls' ? 'secureConnect' : 'connect', () => r());
        c.once('error', j);
      });
      this.port = c.localPort ?? 0;
      c.on('data', (d: Buffer) => {
        for (const ev of this.framer.push(d)) if (ev.type === 'message') this.onMessage(ev.message);
      });
      c.on('error', () => undefined);
    }
    return this;
  }

  private onBytes(b: Buffer): void {
    const r = parseMessage(b);
    if (r.ok) this.onMessage(r.message);
  }

  private onMessage(m: SipMessage): void {
    if (m.kind === 'request' && m.method === 'OPTIONS') {
      this.options++;
      if (this.answerOptions) this.sendRaw(serializeMessage(buildResponse(m, 200, 'OK', undefined, { toTag: 'ph' + this.port })));
      return;
    }
    this.received.push(m);
    this.waiters = this.waiters.filter((w) => {
      if (!w.pred(m)) return true;
      w.resolve(m);
      return false;
    });
  }

  sendRaw(b: Buffer | string): void {
    const buf = typeof b === 'string' ? Buffer.from(b, 'latin1') : b;
    if (this.udp) this.udp.send(buf, this.server.port, this.server.host);
    else this.tcp?.write(buf);
  }

  /** Waits for a message (response by default) matching `pred`. */
  wait(pred: (m: SipMessage) => boolean, timeoutMs = 3000): Promise<SipMessage> {
    const have = this.received.find(pred);
    if (have !== undefined) {
      this.received.splice(this.received.indexOf(have), 1);
      return Promise.resolve(have);
    }
    return new Promise((resolve, reject) => {
      const w = {
        pred,
        resolve: (m: SipMessage): void => {
          clearTimeout(timer);
          this.received.splice(this.received.indexOf(m), 1);
          resolve(m);
        },
      };
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((x) => x !== w);
        reject(new Error('timed out waiting for a SIP message'));
      }, timeoutMs);
      this.waiters.push(w);
    });
  }

  /** The response to the request with this branch. */
  response(branch: string, timeoutMs = 3000): Promise<SipResponse> {
    return this.wait((m) => m.kind === 'response' && (getHeader(m, 'via') ?? '').includes(branch) && m.status >= 200, timeoutMs) as Promise<SipResponse>;
  }

  get transport(): string {
    return this.proto.toUpperCase();
  }

  /** The certificate the node showed (TLS only). */
  peerCertificate(): ReturnType<TLSSocket['getPeerX509Certificate']> {
    return this.proto === 'tls' ? (this.tcp as TLSSocket).getPeerX509Certificate() : undefined;
  }

  /** A REGISTER as text, with Via and Call-ID of this phone. */
  registerText(o: RegisterOpts): { text: string; branch: string } {
    const branch = o.branch ?? 'z9hG4bK' + randomBytes(8).toString('hex');
    const cseq = o.cseq ?? this.seq++;
    const contacts = o.contactHeaders ?? (Array.isArray(o.contact) ? o.contact : [o.contact ?? `sip:${o.user}@${this.localAddress}:${this.port}${this.proto === 'tls' ? ';transport=tls' : ''}`]).map((c) => `<${c}>${o.expires !== undefined ? `;expires=${o.expires}` : ''}`);
    const lines = [
      `REGISTER ${o.requestUri ?? `sip:${o.domain}`} SIP/2.0`,
      `Via: SIP/2.0/${this.transport} ${this.localAddress}:${this.port};rport;branch=${branch}`,
      'Max-Forwards: 70',
      `From: <sip:${o.user}@${o.domain}>;tag=f${this.port}`,
      `To: <sip:${o.user}@${o.domain}>`,
      `Call-ID: ${o.callId ?? this.callId}`,
      `CSeq: ${cseq} REGISTER`,
      ...contacts.map((c) => `Contact: ${c}`),
      ...(o.userAgent !== undefined ? [`User-Agent: ${o.userAgent}`] : []),
      ...(o.authorization !== undefined ? [`Authorization: ${o.authorization}`] : []),
      ...(o.extra ?? []),
      'Content-Length: 0',
      '',
      '',
    ];
    return { text: lines.join('\r\n'), branch };
  }

  async register(o: RegisterOpts): Promise<SipResponse> {
    const { text, branch } = this.registerText(o);
    this.sendRaw(text);
    return this.response(branch);
  }

  /** REGISTER, answer the digest challenge with `algorithm`'s challenge, return the final response. */
  async registerWithAuth(o: RegisterOpts & { password: string; algorithm?: 'MD5' | 'SHA-256' }): Promise<SipResponse> {
    const first = await this.register(o);
    if (first.status !== 401) return first;
    const ch = getHeaders(first, 'www-authenticate').find((c) => new RegExp(`algorithm=${o.algorithm ?? 'MD5'}\\b`, 'i').test(c));
    if (ch === undefined) throw new Error(`no ${o.algorithm ?? 'MD5'} challenge in ${getHeaders(first, 'www-authenticate').join(' | ')}`);
    const uri = o.requestUri ?? `sip:${o.domain}`;
    return this.register({ ...o, authorization: authorize(ch, { user: o.user, password: o.password, method: 'REGISTER', uri }) });
  }

  /** Sends a request built from lines (Via/Call-ID filled in), returns the final response. */
  async request(method: string, uri: string, headers: string[] = [], body = '', timeoutMs = 3000): Promise<SipResponse> {
    const branch = 'z9hG4bK' + randomBytes(8).toString('hex');
    const text = [
      `${method} ${uri} SIP/2.0`,
      `Via: SIP/2.0/${this.transport} ${this.localAddress}:${this.port};rport;branch=${branch}`,
      ...(headers.some((h) => /^From:/i.test(h)) ? [] : [`From: <sip:tester@example.org>;tag=t${this.port}`]),
      ...(headers.some((h) => /^To:/i.test(h)) ? [] : [`To: <${uri}>`]),
      ...(headers.some((h) => /^Call-ID:/i.test(h)) ? [] : [`Call-ID: ${this.callId}-${this.seq}`]),
      `CSeq: ${this.seq++} ${method}`,
      ...headers,
      `Content-Length: ${Buffer.byteLength(body, 'latin1')}`,
      '',
      body,
    ].join('\r\n');
    this.sendRaw(text);
    return this.response(branch, timeoutMs);
  }

  /** Answers a request the node sent this phone (MESSAGE, NOTIFY, ...). */
  answer(req: SipRequest, status: number, reason = 'OK'): void {
    this.sendRaw(serializeMessage(buildResponse(req, status, reason, undefined, { toTag: 'ph' + this.port })));
  }

  /** Waits for a request of `method` from the node. */
  async incoming(method: string, timeoutMs = 5000): Promise<SipRequest> {
    return (await this.wait((m) => m.kind === 'request' && m.method === method, timeoutMs)) as SipRequest;
  }

  close(): void {
    this.udp?.close();
    this.tcp?.destroy();
  }
}

/** Contact header values of a response. */
export function contactsOf(m: SipMessage): string[] {
  return getHeaders(m, 'contact');
}

export type { SipRequest };

/**
 * A SIP service for the tests on 127.0.0.1 (a free port) serving `domain` to `users`, with
 * short timers (T1 100 ms), started; `extra` overrides any option. Returns it and its phones.
 */
export async function sipNode(
  t: Test,
  domain: string,
  users: ReadonlyMap<string, ReturnType<UserDirectory['lookup']>>,
  extra: Partial<SipServiceOptions> = {},
): Promise<{ svc: SipService; phone: (proto?: 'udp' | 'tcp', localAddress?: string) => Promise<TestPhone> }> {
  const svc = new SipService({
    host: '127.0.0.1',
    port: 0,
    domain,
    openRegistration: false,
    users: { lookup: (u) => users.get(u) },
    keepalive: { intervalMs: 60_000, timeoutMs: 1000 },
    timers: { t1: 100, t2: 400, t4: 500 },
    ...extra,
  });
  return { svc, phone: await serve(t, svc) };
}

/**
 * Starts `svc` for the test `t`; returns a factory of phones pointed at it. The phones and the
 * service are closed when the test ends.
 */
export async function serve(t: Test, svc: SipService): Promise<(proto?: 'udp' | 'tcp', localAddress?: string) => Promise<TestPhone>> {
  await svc.start();
  const phones: TestPhone[] = [];
  t.teardown(async () => {
    for (const p of phones) p.close();
    await svc.stop();
  });
  return async (proto = 'udp', localAddress = '127.0.0.1') => {
    const p = await new TestPhone({ host: '127.0.0.1', port: svc.port }, proto, localAddress).open();
    phones.push(p);
    return p;
  };
}
