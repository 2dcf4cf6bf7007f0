// A REGISTER addressed to the node, RFC 3261 10.3 steps 1 to 5: the Request-URI names this
// registrar, the sender is authenticated with digest (401 challenges, RFC 7616/8760) unless
// registration is open, and registers its own address of record in this domain. The registrar
// (registrar.ts) then does steps 6 to 8 on the bindings.
//
// A node also registers a name of another domain that one of its users' accounts answers to (an
// alias: the user's own name, delegated to this node as one of its serving nodes), so a phone
// with two registrars (sip:alice@a.example at node A, and at node B through B) is registered at
// both under one address. Such a registration is always authenticated, as that user, and the
// contact is kept under the user's account here.

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
    private readonly users: UserDirectory,
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
    let to: Uri;
    try {
      to = (parsed.to ?? parseNameAddr(getHeader(req, 'to') as string)).uri;
    } catch {
      replyTo(inc, 400, 'Bad Request');
      return;
    }
    // step 1: the Request-URI names this registrar's domain, or the domain of a user's alias
    let aliasUser: string | undefined;
    if (ruri.kind !== 'sip' || !this.self.isOurHost(ruri.host)) {
      aliasUser = this.aliasUserOf(ruri, to);
      if (aliasUser === undefined) {
        replyTo(inc, 404, 'Not Found');
        return;
      }
    }
    if (!acceptableBody(inc)) return;
    // step 3: who is asking
    const authz = inc.tx?.stateless === true ? NO_CREDENTIALS : getHeaders(req, 'authorization');
    let authUser: string | null = null;
    if (!this.open || authz.length > 0 || aliasUser !== undefined) {
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
    // step 5: the address of record, in this domain (or the user whose alias it is)
    if (aliasUser === undefined && (to.kind !== 'sip' || to.user === null || to.host.toLowerCase() !== this.self.domain)) {
      replyTo(inc, 404, 'Not Found');
      return;
    }
    const user = aliasUser ?? canonicalUser((to as SipUri).user as string);
    // step 4: an authenticated user registers its own address of record only
    if (authUser !== null && authUser !== user) {
      replyTo(inc, 403, 'Forbidden');
      return;
    }
    const r = this.registrar.register(req, flow, via, this.self.aorOf(user), parsed);
    replyTo(inc, r.status, r.reason, r.headers);
  }

  /** The user whose alias the To names, when the Request-URI is that alias's domain. */
  private aliasUserOf(ruri: Uri, to: Uri): string | undefined {
    if (ruri.kind !== 'sip' || ruri.user !== null || to.kind !== 'sip' || to.user === null) return undefined;
    const host = to.host.toLowerCase();
    if (host !== ruri.host.toLowerCase() || this.users.userOfAlias === undefined) return undefined;
    return this.users.userOfAlias(`sip:${canonicalUser(to.user)}@${host}`);
  }
}
