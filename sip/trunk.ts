// The trunk to an operator's own SIP server (Kamailio, OpenSIPS, a PBX): the node as the chain
// edge of a SIP network it does not register itself. Requests for the domain's users that no
// phone registered here takes go to the server; requests from the server are its users' and are
// relayed as if from the node's own phones; and the server's users are checked online with an
// OPTIONS through the trunk, which the server's location lookup hands to the phone (a phone that
// answers is online: the same proof as the node's own pings), so their presence goes to the chain
// like any phone's. docs/sip.md, "Join with your own SIP server".

import { randomUUID } from 'node:crypto';
import { isIP } from 'node:net';
import { headerKey, type SipHeader, type SipRequest } from './message.ts';
import { newBranch, newTag } from './serialize.ts';
import { viaFor, type Flow } from './transport.ts';
import type { TransactionLayer } from './transaction.ts';
import type { NodeIdentity } from './identity.ts';
import type { PresenceListener } from './registrar.ts';
import type { Hop } from './proxy.ts';

export interface TrunkOptions {
  /**
   * the servers' addresses (IPs) and SIP ports, over UDP, in order: several instances of one
   * SIP network (Kamailio sharing registrations over DMQ), the next tried when one does not answer
   */
  targets: Array<{ host: string; port: number }>;
  /**
   * the sources whose requests are the servers': `IP` (any port) or `IP:PORT`; default the
   * targets' own host:port (where Kamailio sends from). Anyone else is a stranger, whose requests
   * need a phone registered here or credentials.
   */
  allow?: string[];
  /** how often each user behind the trunk is checked, ms (default 30 s) */
  probeEveryMs?: number;
  /** how long one check waits for an answer, ms (default 4 s) */
  probeTimeoutMs?: number;
}

/** Where a user's phone is reached through the trunk: its users and what they are called. */
export interface TrunkUsers {
  /** the users whose phones register at the server */
  users(): string[];
}

export class Trunk {
  readonly flows: Flow[];
  private readonly allow: Array<{ address: string; port: number | null }>;
  private readonly probeEveryMs: number;
  private readonly probeTimeoutMs: number;
  private readonly callId = randomUUID();
  private seq = 0;
  private timer: NodeJS.Timeout | null = null;
  private stopped = true;
  /** what each user was last found (true: a phone answered) */
  private readonly online = new Map<string, boolean>();
  /** servers (their index) that did not answer their last check */
  private readonly down = new Set<number>();
  /** checks made and answered, for logs and tests */
  stats = { probes: 0, online: 0 };

  constructor(
    o: TrunkOptions,
    private readonly self: NodeIdentity,
    private readonly tx: TransactionLayer,
  ) {
    if (o.targets.length === 0) throw new Error('a trunk needs at least one server');
    for (const x of o.targets) if (isIP(x.host) === 0) throw new Error(`the trunk's host must be an IP address, got "${x.host}"`);
    this.flows = o.targets.map((x) => ({ proto: 'udp', address: x.host, port: x.port, conn: 0 }));
    this.allow = (o.allow ?? o.targets.map((x) => `${x.host}:${x.port}`)).map(parseSource);
    this.probeEveryMs = o.probeEveryMs ?? 30_000;
    this.probeTimeoutMs = o.probeTimeoutMs ?? 4_000;
  }

  /** Whether a request on `flow` comes from the server (its address, and port when the allow entry names one). */
  isFrom(flow: Flow): boolean {
    for (const a of this.allow) if (a.address === flow.address && (a.port === null || a.port === flow.port)) return true;
    return false;
  }

  /**
   * The hops that hand a request to the servers, one after another, with the Request-URI `ruri`
   * (sip:user@domain: the server's lookup finds the phone, and a request that came for the
   * node's address or another of the user's names must not look like one for elsewhere, which
   * the server would send back).
   */
  hops(ruri: string): Hop[][] {
    return this.order().map((i) => [{ ruri, route: [], flow: this.flows[i], label: `trunk ${i + 1}` }]);
  }

  /** The servers in order, those that answered their last check first (the checks learn which are down). */
  private order(): number[] {
    const up: number[] = [];
    const down: number[] = [];
    for (let i = 0; i < this.flows.length; i++) (this.down.has(i) ? down : up).push(i);
    return [...up, ...down];
  }

  /** Servers that answered their last check (all of them until one fails to). */
  get serversUp(): number {
    return this.flows.length - this.down.size;
  }

  /**
   * Sends one OPTIONS for `aor` through the trunk (the next server when one does not answer);
   * true when a phone answered 2xx. A 404 or 480 from a server (no phone registered) or no
   * answer at all is offline.
   */
  async probe(aor: string): Promise<boolean> {
    for (const i of this.order()) {
      const status = await this.probeVia(this.flows[i], aor);
      if (status === null) {
        this.down.add(i);
        continue;
      }
      this.down.delete(i);
      return status >= 200 && status < 300;
    }
    return false;
  }

  /** One OPTIONS through one server: the final status, or null when nothing answered. */
  private async probeVia(flow: Flow, aor: string): Promise<number | null> {
    const branch = newBranch();
    const headers: SipHeader[] = [
      hdr('Via', viaFor(flow, this.self.hostportFor('udp'), branch, true)),
      hdr('Max-Forwards', '70'),
      hdr('From', `<sip:presence@${this.self.domain}>;tag=${newTag()}`),
      hdr('To', `<${aor}>`),
      hdr('Call-ID', `${this.callId}-${(this.seq = (this.seq + 1) >>> 0)}`),
      hdr('CSeq', '1 OPTIONS'),
      hdr('Content-Length', '0'),
    ];
    const req: SipRequest = { kind: 'request', method: 'OPTIONS', uri: aor, version: 'SIP/2.0', headers, body: Buffer.alloc(0) };
    this.stats.probes++;
    const res = await this.tx.request(req, flow, branch, this.probeTimeoutMs);
    if (res !== null && res.status >= 200 && res.status < 300) this.stats.online++;
    return res?.status ?? null;
  }

  /**
   * How long an online user stays online without another check: a phone's registration lasts
   * minutes, and a failed check says offline at once, so this only bounds how long a node that
   * died leaves its users online on the chain (10 minutes, or two rounds when those are longer).
   */
  private get holdMs(): number {
    return Math.max(600_000, 2 * this.probeEveryMs);
  }

  /**
   * Checks every user now and then every probeEveryMs; a user whose state changed (and every
   * online one, each round) is reported to `onPresence` as a phone would be.
   */
  start(users: TrunkUsers, aorOf: (user: string) => string, onPresence: PresenceListener): void {
    if (!this.stopped) return;
    this.stopped = false;
    const round = async (): Promise<void> => {
      const list = users.users();
      // a few at a time: a server with thousands of users is not flooded
      for (let i = 0; i < list.length && !this.stopped; i += 16) {
        await Promise.all(
          list.slice(i, i + 16).map(async (u) => {
            const aor = aorOf(u);
            const up = await this.probe(aor).catch(() => false);
            const was = this.online.get(u);
            this.online.set(u, up);
            if (!this.stopped && (up || was === true)) onPresence(aor, up, up ? Math.floor((Date.now() + this.holdMs) / 1000) : 0);
          }),
        );
      }
      if (!this.stopped) this.timer = setTimeout(() => void round(), this.probeEveryMs).unref();
    };
    void round();
  }

  /** Whether the last check found `user` online. */
  isOnline(user: string): boolean {
    return this.online.get(user) === true;
  }

  stop(): void {
    this.stopped = true;
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
  }
}

/** A trunk source, `IP` or `IP:PORT` (IPv6 in brackets with a port); null when it is neither. */
export function parseTrunkSource(s: string): { address: string; port: number | null } | null {
  if (isIP(s) !== 0) return { address: s, port: null };
  const m = /^(?:\[([0-9a-fA-F:]+)\]|([0-9.]+)):([0-9]{1,5})$/.exec(s);
  const address = m?.[1] ?? m?.[2] ?? '';
  const port = Number(m?.[3]);
  return m === null || isIP(address) === 0 || port < 1 || port > 65535 ? null : { address, port };
}

function parseSource(s: string): { address: string; port: number | null } {
  const p = parseTrunkSource(s);
  if (p === null) throw new Error(`a trunk source must be an IP address or IP:PORT, got "${s}"`);
  return p;
}

function hdr(name: string, value: string): SipHeader {
  return { name, key: headerKey(name), value };
}
