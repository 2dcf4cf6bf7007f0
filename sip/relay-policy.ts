// Who may have the node relay a request (docs/sip.md, "Who may relay"): only its own users, proven
// by the flow their phone registered on or by Proxy-Authorization (RFC 3261 22.3, a 407 asks for
// it; the same accounts and nonces as REGISTER), or anyone when registration is open. Without
// this the node would be an open relay for requests to phone addresses and other nodes' users.

import { getHeader, getHeaders } from './message.ts';
import { replyTo, type IncomingRequest } from './transaction.ts';
import type { ParsedRequest } from './validate.ts';
import type { DigestAuth } from './digest.ts';
import type { Registrar } from './registrar.ts';
import type { UserDirectory } from './injected.ts';
import { canonicalUser, type NodeIdentity } from './identity.ts';
import type { Trunk } from './trunk.ts';

export class RelayPolicy {
  private readonly credentials: UserDirectory['lookup'];

  constructor(
    private readonly self: NodeIdentity,
    private readonly registrar: Registrar,
    private readonly digest: DigestAuth,
    private readonly users: UserDirectory,
    /** registration is open (devnet) */
    private readonly open: boolean,
    /** the operator's server, whose requests are its users' (sip/trunk.ts) */
    private readonly trunk?: Trunk,
  ) {
    this.credentials = (u) => users.lookup(u.toLowerCase());
  }

  /** The user of this node's domain the request's From names (escapes decoded, lower case), or null. */
  localUserOf(parsed: ParsedRequest): string | null {
    const f = parsed.from?.uri;
    return f !== undefined && f.kind === 'sip' && f.user !== null && f.host.toLowerCase() === this.self.domain ? canonicalUser(f.user) : null;
  }

  /**
   * The request came from a phone registered here as its From user (the flow it registered on),
   * or from the operator's server behind the trunk, whose users are this domain's too.
   */
  fromLocalPhone(inc: IncomingRequest, parsed: ParsedRequest): boolean {
    const user = this.localUserOf(parsed);
    if (user === null) return false;
    const flow = inc.flow;
    if (this.trunk?.isFrom(flow) === true) return true;
    for (const b of this.registrar.lookup(this.self.aorOf(user))) {
      const bf = b.flow;
      if (bf.proto === flow.proto && (flow.proto === 'udp' ? bf.address === flow.address && bf.port === flow.port : bf.conn === flow.conn)) return true;
    }
    return false;
  }

  /**
   * Whether the request may be relayed: it comes from this node's phone (the flow it registered
   * on), carries valid Proxy-Authorization for its From user (407 asks for it), or registration
   * is open (devnet). Answers 403 or 407 itself when not.
   */
  mayRelay(inc: IncomingRequest, parsed: ParsedRequest): boolean {
    const user = this.localUserOf(parsed);
    if (user === null) {
      replyTo(inc, 403, 'Forbidden', [['Warning', `399 ${this.self.domain} "relaying denied"`]]);
      return false;
    }
    return this.callerIs(inc, parsed, user);
  }

  /** The request is from `user` of this node (see mayRelay); answers 407 or 403 when it cannot tell. */
  callerIs(inc: IncomingRequest, parsed: ParsedRequest, user: string): boolean {
    if (this.localUserOf(parsed) !== user) {
      replyTo(inc, 403, 'Forbidden');
      return false;
    }
    if (this.fromLocalPhone(inc, parsed) || this.self.sentByUs(inc.flow)) return true;
    const req = inc.req;
    const authz = getHeaders(req, 'proxy-authorization');
    if (authz.length === 0 && this.open) return true;
    if (this.users.lookup(user) === undefined) {
      replyTo(inc, 403, 'Forbidden', [['Warning', `399 ${this.self.domain} "no such account"`]]);
      return false;
    }
    const r = this.digest.verify(authz, req.method, req.uri, req.body, inc.flow.address, this.credentials);
    if (r.ok && r.user.toLowerCase() === user) return true;
    if (r.ok) {
      replyTo(inc, 403, 'Forbidden');
      return false;
    }
    if (r.status === 401) {
      const ch = this.digest.challenges(r.stale, this.digest.algorithmsFor(getHeader(req, 'user-agent')), inc.flow.address);
      replyTo(inc, 407, 'Proxy Authentication Required', ch.map((c) => ['Proxy-Authenticate', c] as [string, string]));
    } else replyTo(inc, r.status, r.reason);
    return false;
  }
}
