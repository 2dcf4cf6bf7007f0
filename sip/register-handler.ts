// A REGISTER addressed to the node, RFC 3261 10.3 steps 1 to 5: the Request-URI names this
// registrar, the sender is authenticated with digest (401 challenges, RFC 7616/8760) unless
// registration is open, and registers its own address of record in this domain. The registrar
// (registrar.ts) then does steps 6 to 8 on the bindings.

import { getHeader, getHeaders } from './message.ts';
import { parseNameAddr, parseUri, type SipUri, type Uri } from './uri.ts';
import { replyTo, type IncomingRequest } from './transaction.ts';
import type { ParsedRequest } from './validate.ts';
import type { DigestAuth } from './digest.ts';
import type { Registrar } from './registrar.ts';
import type { SipLogger, UserDirectory } from './injected.ts';
import { canonicalUser, type NodeIdentity } from './identity.ts';
import { acceptableBody } from './uas.ts';

/** REGISTER answers by result (for the metrics). */
export interface RegisterResults {
  registerOk: number;
  registerChallenged: number;
  registerRefused: number;
  registerError: number;
}

/** A stateless REGISTER is one without credentials (see SipService.onMessage): nothing to read. */
const NO_CREDENTIALS: string[] = [];

export class RegisterHandler {
  private readonly credentials: UserDirectory['lookup'];
  private readonly namesNode: (uri: string) => boolean;

  constructor(
    private readonly self: NodeIdentity,
    private readonly registrar: Registrar,
    private readonly digest: DigestAuth,
    users: UserDirectory,
    /** registration is open (devnet): credentials are checked only when sent */
    private readonly open: boolean,
    private readonly log: SipLogger,
    private readonly results: RegisterResults,
  ) {
    this.credentials = (u) => users.lookup(u.toLowerCase());
    // a digest-uri naming the node designates this registrar too (SIPp puts its address there)
    this.namesNode = (u) => {
      try {
        return self.isForNode(parseUri(u));
      } catch {
        return false;
      }
    };
  }

  /** Answers the REGISTER and counts the answer. */
  handle(inc: IncomingRequest, ruri: Uri, parsed: ParsedRequest): void {
    this.register(inc, ruri, parsed);
    const st = inc.tx?.lastStatus;
    const r = this.results;
    if (st === 200) r.registerOk++;
    else if (st === 401) r.registerChallenged++;
    else if (st === 403 || st === 404) r.registerRefused++;
    else r.registerError++;
  }

  private register(inc: IncomingRequest, ruri: Uri, parsed: ParsedRequest): void {
    const { req, flow, via } = inc;
    // step 1: the Request-URI names this registrar's domain
    if (ruri.kind !== 'sip' || !this.self.isOurHost(ruri.host)) {
      replyTo(inc, 404, 'Not Found');
      return;
    }
    if (!acceptableBody(inc)) return;
    // step 3: who is asking
    const authz = inc.tx?.stateless === true ? NO_CREDENTIALS : getHeaders(req, 'authorization');
    let authUser: string | null = null;
    if (!this.open || authz.length > 0) {
      const r = this.digest.verify(authz, 'REGISTER', req.uri, req.body, flow.address, this.credentials, undefined, this.namesNode);
      if (!r.ok) {
        if (r.status === 401) {
          if (r.failure) this.log.debug(`sip: failed authentication from ${flow.address}`);
          const ch = this.digest.challenges(r.stale, this.digest.algorithmsFor(getHeader(req, 'user-agent')), flow.address);
          replyTo(inc, 401, 'Unauthorized', ch.map((c) => ['WWW-Authenticate', c] as [string, string]));
        } else replyTo(inc, r.status, r.reason);
        return;
      }
      authUser = r.user.toLowerCase();
    }
    // step 5: the address of record, in this domain
    let to: Uri;
    try {
      to = (parsed.to ?? parseNameAddr(getHeader(req, 'to') as string)).uri;
    } catch {
      replyTo(inc, 400, 'Bad Request');
      return;
    }
    if (to.kind !== 'sip' || to.user === null || to.host.toLowerCase() !== this.self.domain) {
      replyTo(inc, 404, 'Not Found');
      return;
    }
    const user = canonicalUser((to as SipUri).user as string);
    // step 4: an authenticated user registers its own address of record only
    if (authUser !== null && authUser !== user) {
      replyTo(inc, 403, 'Forbidden');
      return;
    }
    const r = this.registrar.register(req, flow, via, this.self.aorOf(user), parsed);
    replyTo(inc, r.status, r.reason, r.headers);
  }
}
