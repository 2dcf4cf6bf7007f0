// Where a request for a user goes (RFC 3261 16.5 and 16.6, docs/routing.md): to the user's phones
// registered here (forking by q), to the node the chain names for another node's user, to the
// presence agent, or nowhere (404 for a name nobody serves, 480 for one that is offline). The
// same view answers what the presence agent tells watchers. The chain is reached only through
// the injected Locator, so this file decides, the node supplies the facts.

import { isIP } from 'node:net';
import { removeHeaders } from './message.ts';
import { replyTo, type IncomingRequest } from './transaction.ts';
import type { ParsedRequest } from './validate.ts';
import { bareHost, type SipUri, type Uri } from './uri.ts';
import type { SipTransport } from './transport.ts';
import { ContactState, type ContactBinding, type Registrar } from './registrar.ts';
import type { CallRole, Hop, Proxy } from './proxy.ts';
import type { PresenceAgent } from './presence-agent.ts';
import type { Basic } from './pidf.ts';
import type { Locator, UserDirectory } from './injected.ts';
import { canonicalUser, type NodeIdentity } from './identity.ts';
import type { RelayPolicy } from './relay-policy.ts';
import { contactFlow } from './contact-flow.ts';
import { NODE_PROOF_LABEL, parseNodeProof } from './tls.ts';
import type { Trunk } from './trunk.ts';

/** INVITEs answered here without forwarding, by result (for the metrics). */
export interface CallResults {
  callsNotFound: number;
  callsOffline: number;
}

/** What the router works with; the service builds each of them once. */
export interface RouterParts {
  self: NodeIdentity;
  registrar: Registrar;
  users: UserDirectory;
  /** without it only this node's users are reachable */
  locator: Locator | undefined;
  relay: RelayPolicy;
  proxy: Proxy;
  presence: PresenceAgent;
  transport: SipTransport;
  /** registration is open (devnet): any user of the domain exists */
  open: boolean;
  results: CallResults;
  /** the operator's own SIP server, where the domain's users no phone here takes are (sip/trunk.ts) */
  trunk?: Trunk;
}

const UNKNOWN = { kind: 'unknown' } as const;

export class Router {
  private readonly self: NodeIdentity;
  private readonly registrar: Registrar;
  private readonly users: UserDirectory;
  private readonly locator: Locator | undefined;
  private readonly relay: RelayPolicy;
  private readonly proxy: Proxy;
  private readonly presence: PresenceAgent;
  private readonly transport: SipTransport;
  private readonly open: boolean;
  private readonly results: CallResults;
  private readonly trunk: Trunk | undefined;

  constructor(p: RouterParts) {
    this.self = p.self;
    this.registrar = p.registrar;
    this.users = p.users;
    this.locator = p.locator;
    this.relay = p.relay;
    this.proxy = p.proxy;
    this.presence = p.presence;
    this.transport = p.transport;
    this.open = p.open;
    this.results = p.results;
    this.trunk = p.trunk;
  }

  /** A request for a user: this node's phones, another node's user, or the presence agent. */
  toUser(inc: IncomingRequest, ruri: Uri, parsed: ParsedRequest, presenceUas: boolean, proof?: string): void {
    const req = inc.req;
    const phone = e164Of(ruri);
    if (phone === null && (ruri.kind !== 'sip' || ruri.user === null)) {
      replyTo(inc, 416, 'Unsupported URI Scheme');
      return;
    }
    let name: string;
    let ours = false;
    let user = '';
    if (phone !== null) name = phone;
    else {
      const u = ruri as SipUri;
      user = canonicalUser(u.user as string);
      const host = u.host.toLowerCase();
      ours = this.self.namesUs(u);
      if (!ours && isIP(bareHost(host)) !== 0) {
        // a phone's address (outside a dialog): only this node's own phones may send there
        if (this.relay.mayRelay(inc, parsed)) this.proxy.forward(inc, { groups: [[{ ruri: null, route: [], flow: null, label: 'the addressed phone' }]], recordRoute: req.method === 'INVITE' });
        return;
      }
      name = ours ? this.self.aorOf(user) : `sip:${user}@${host}`;
      // A number dialled as sip:+NUMBER@this-domain, as most phones send it (without
      // user=phone): a number on the chain, unless an account here is called that.
      if (ours && E164_USER.test(user) && this.users.lookup(user) === undefined && !this.registrar.has(name) && this.users.isTrunkUser?.(user) !== true) {
        name = user;
        ours = false;
      }
    }
    // a name a user of this node claimed and delegated here (a number, another domain's address)
    const aliasOf = ours ? undefined : this.users.userOfAlias?.(name);
    const aor = aliasOf !== undefined ? this.self.aorOf(aliasOf) : name;
    if (presenceUas) {
      // Presence is served to this node's own users only: NOTIFYs go where a SUBSCRIBE's Contact
      // and Record-Route say, so a stranger's SUBSCRIBE would make the node send (and connect) to
      // any address it names, several times the bytes it sent. A user proves itself by its
      // registered flow or by digest (a nonce round trip, which a forged source cannot do).
      if (req.method === 'SUBSCRIBE') {
        if (this.relay.mayRelay(inc, parsed)) this.presence.subscribe(inc, name);
      }
      else if (!ours) replyTo(inc, 403, 'Forbidden', [['Warning', `399 ${this.self.domain} "publish at the node that serves you"`]]);
      else if (this.relay.callerIs(inc, parsed, user)) this.presence.publish(inc, name);
      return;
    }
    const contacts = this.registrar.lookup(aor).filter((b) => b.state !== ContactState.Dead);
    if (contacts.length > 0) {
      void this.deliver(inc, parsed, proof, () => this.contactGroups(contacts));
      return;
    }
    const at = this.locator?.locate(name) ?? UNKNOWN;
    if (at.kind === 'remote') {
      if (!at.online) {
        if (req.method === 'INVITE') this.results.callsOffline++;
        replyTo(inc, 480, 'Temporarily Unavailable', [['Warning', `399 ${this.self.domain} "offline"`]]);
        return;
      }
      // a request from another node for a name this node does not serve is no one's to relay
      if (this.relay.localUserOf(parsed) === null) {
        replyTo(inc, 480, 'Temporarily Unavailable', [['Warning', `399 ${this.self.domain} "not served by this node"`]]);
        return;
      }
      if (!this.relay.mayRelay(inc, parsed)) return;
      // one node after another (a node that does not answer in time fails over to the next)
      const groups: Hop[][] = [];
      // a number goes on as one (user=phone), whatever domain the phone dialled it in
      const ruri = name.startsWith('+') ? `sip:${name}@${this.self.domain};user=phone` : null;
      for (const n of at.nodes) {
        const label = 'node ' + Buffer.from(n.nodeId).toString('hex').slice(0, 12);
        for (const u of n.uris) groups.push([{ ruri, route: [`<${u};lr>`], flow: null, label, node: n.nodeId }]);
      }
      this.proxy.forward(inc, { groups, recordRoute: req.method === 'INVITE', call: req.method === 'INVITE' ? { role: 'orig', peer: at.nodes[0]?.nodeId ?? null } : undefined });
      return;
    }
    // The domain's users no phone here takes are at the operator's server, if the node has one;
    // what came from that server is never sent back to it.
    if (this.trunk !== undefined && (ours || aliasOf !== undefined || at.kind === 'local') && !this.trunk.isFrom(inc.flow)) {
      // to the server as sip:USER@DOMAIN (a number as its user part), whatever host it came for
      const hops = this.trunk.hops(this.self.aorOf(ours ? user : (aliasOf ?? phone ?? user)));
      void this.deliver(inc, parsed, proof, () => Promise.resolve(hops));
      return;
    }
    const known = at.kind === 'local' || aliasOf !== undefined || (ours && (this.registrar.has(name) || this.users.lookup(user) !== undefined));
    if (req.method === 'INVITE') {
      if (known) this.results.callsOffline++;
      else this.results.callsNotFound++;
    }
    // Toward a stranger, an account of this domain that is offline looks like one that does not
    // exist (404 both, as Kamailio's lookup answers): which accounts exist is this node's to tell
    // its own phones only. Names the chain knows are public, and keep their 480.
    if (known && (at.kind === 'local' || aliasOf !== undefined || this.relay.fromLocalPhone(inc, parsed))) replyTo(inc, 480, 'Temporarily Unavailable');
    else replyTo(inc, 404, 'Not Found');
  }

  /**
   * Hands a request to this node's users (its phones, or the operator's server behind the trunk).
   * A From naming one of this node's users must be that user (its flow, the trunk, or digest:
   * 407), else anyone could ring a phone as its neighbour; P-Asserted-Identity is believed only
   * from this node's own users, and removed from anyone else's request. A call from another node
   * is the terminating side of a call between nodes (receipts); a node that leaves the calls it
   * sent here unpaid sends no more until it settles them.
   */
  private async deliver(inc: IncomingRequest, parsed: ParsedRequest, proof: string | undefined, groups: () => Promise<Hop[][]>): Promise<void> {
    const req = inc.req;
    const claimed = this.relay.localUserOf(parsed);
    if (claimed !== null && !this.relay.callerIs(inc, parsed, claimed)) return;
    if (claimed === null) removeHeaders(req, 'p-asserted-identity');
    const role: CallRole['role'] = this.relay.fromLocalPhone(inc, parsed) ? 'local' : 'term';
    // a call from another node: which one, when it proved itself on its TLS connection
    const peer = role === 'term' ? this.callerNode(inc, proof) : null;
    const refused = peer !== null && req.method === 'INVITE' ? (this.locator?.refusesCallsFrom?.(peer) ?? null) : null;
    if (refused !== null) {
      replyTo(inc, 403, 'Forbidden', [['Warning', `399 ${this.self.domain} "${refused}"`]]);
      return;
    }
    this.proxy.forward(inc, { groups: await groups(), recordRoute: req.method === 'INVITE', call: req.method === 'INVITE' ? { role, peer } : undefined });
  }

  /**
   * The node a request came from: one its TLS connection proved before, or the one whose proof
   * it carries (sip/tls.ts), checked against the chain once per connection; null when unknown.
   */
  private callerNode(inc: IncomingRequest, proof: string | undefined): Uint8Array | null {
    const known = this.transport.provenNode(inc.flow);
    if (known !== null || proof === undefined) return known;
    const p = parseNodeProof(proof);
    const binding = p === null ? null : this.transport.channelBinding(inc.flow, NODE_PROOF_LABEL);
    if (p === null || binding === null || this.locator?.verifyNodeProof?.(p.nodeId, binding, p.sig) !== true) return null;
    this.transport.setProvenNode(inc.flow, p.nodeId);
    return p.nodeId;
  }

  /** A user's contacts as forking groups: the highest q first, equal q in parallel (RFC 3261 16.6). */
  private async contactGroups(contacts: ContactBinding[]): Promise<Hop[][]> {
    const sorted = [...contacts].sort((a, b) => qOf(b) - qOf(a));
    const groups: Hop[][] = [];
    let q = NaN;
    for (let i = 0; i < sorted.length; i++) {
      const b = sorted[i];
      const hop: Hop = { ruri: b.uriText, route: b.path, flow: b.path.length > 0 ? null : await contactFlow(b, this.transport, this.registrar.keepalive.timeoutMs), label: `contact ${i + 1} of ${b.aor}` };
      if (qOf(b) !== q) groups.push([hop]);
      else groups[groups.length - 1].push(hop);
      q = qOf(b);
    }
    return groups;
  }

  /** What the presence agent tells watchers of `name`. */
  presenceOf(name: string): Basic | undefined {
    const alias = this.users.userOfAlias?.(name);
    if (alias !== undefined && this.registrar.presence(this.self.aorOf(alias)).online) return 'open';
    if (this.registrar.presence(name).online) return 'open';
    const at = this.locator?.locate(name);
    if (at !== undefined && at.kind === 'remote') return at.online ? 'open' : 'closed';
    if (at !== undefined && at.kind === 'local') return 'closed';
    const domain = '@' + this.self.domain;
    if (name.endsWith(domain)) {
      const user = name.slice(4, -domain.length);
      if (this.trunk?.isOnline(user) === true) return 'open';
      if (this.registrar.has(name) || this.users.lookup(user) !== undefined || this.open) return 'closed';
    }
    return undefined;
  }
}

/** q in thousandths; a contact without one counts as 1.0 */
function qOf(b: ContactBinding): number {
  return b.q < 0 ? 1000 : b.q;
}

const E164_USER = /^\+[1-9][0-9]{1,14}$/;

/**
 * The E.164 number a Request-URI dials, as a chain name: `tel:+15551234567` (RFC 3966, visual
 * separators dropped) or `sip:+15551234567@host;user=phone`; null for anything else.
 */
function e164Of(u: Uri): string | null {
  let digits: string | null = null;
  if (u.kind === 'other' && u.scheme === 'tel') digits = u.value.split(';')[0];
  else if (u.kind === 'sip' && u.user !== null && u.user.charCodeAt(0) === 43 && u.params.some((p) => p.name.toLowerCase() === 'user' && p.value?.toLowerCase() === 'phone')) digits = u.user;
  if (digits === null) return null;
  const n = digits.replace(/[-.()]/g, '');
  return /^\+[1-9][0-9]{1,14}$/.test(n) ? n : null;
}

