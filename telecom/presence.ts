// The bridge from the SIP registrar to the chain. What the registrar verified (a phone answered
// OPTIONS) becomes a signed presence binding for `sip:user@domain` naming this node; when the
// phone unregisters, expires or stops answering, the binding turns offline. The node's key
// announces the node and claims the names it binds (its domain and its users' addresses) by
// commit-then-reveal, resuming after a restart from the salts kept in DATADIR/presence.json. A
// user added with an owner key (`dots user add --owner`) gets the address handed to that key once
// claimed, with this node as its serving node; the node then binds it as a delegate and never
// renews it (the user's wallet does). Each node binds in its own slot of a name's bindings, so
// several nodes serving one name never race each other's sequence numbers.
//
// Only changes and renewals reach the chain: a phone refreshing its registration every minute
// writes nothing until the on-chain expiry gets close (a third of the way from its end). The
// binding holds the node's id and never the phone's address.
//
// The bridge is dormant on a node that serves nobody (no accounts and no open registration):
// such a node has nothing to announce, and it keeps the chain free of empty announcements.
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ValidationError } from '../core/errors.ts';
import { bytesEqual, fromHex, isHex, toHex } from '../core/hash.ts';
import { addressOf } from '../core/address.ts';
import { publicKeyOf } from '../core/sig.ts';
import { BindingStatus, Kind, MAX_PRESENCE_ENTRIES, commitmentOf, domainOf, isValidName, signRecord, type NameClaim, type Presence, type PresenceEntry, type NameCommit, type NameRenew, type NameTransfer, type NodeAnnounce, type Rec, type Unsigned } from '../core/records.ts';
import { actsFor, allBindings, getBinding, getName, getNode, keys, seqAfter, servesName, slotOf, type CommitEntry } from '../core/state.ts';
import { writeOwnerOnlyAsync } from '../core/files.ts';
import type { Chain } from '../consensus/chain.ts';
import { MAX_PRESENCE_VERSIONS, type Mempool } from '../core/mempool.ts';
import type { Logger } from '../core/log.ts';
import type { UserStore } from './users.ts';

export const PRESENCE_FILE = 'presence.json';

export interface PresenceOptions {
  chain: Chain;
  /** where the bridge's records go, and where it sees which of them are still pending */
  pool: Pick<Mempool, 'add' | 'has'>;
  secret: Uint8Array;
  datadir: string;
  domain: string;
  /** the node's SIP URIs (sip:HOST:PORT, then its TLS URI when it has one) */
  sipUris: () => string[];
  /** the node's p2p addresses, announced with it */
  p2pAddrs?: () => string[];
  users: UserStore;
  openRegistration: boolean;
  log: Logger;
  /** how often renewals and retries are looked at, ms (default 5000) */
  checkEveryMs?: number;
  /** units per byte the node's records pay its miners (default: the network's least, minFeeRate) */
  feeRate?: number;
}

interface ClaimState {
  salt: string;
  commit: string;
}

interface Desired {
  online: boolean;
  /** unix seconds the registration lasts (online only) */
  until: number;
}

/** What this node last sent of a name: the sequence of the presence record that carries it. */
interface Submitted {
  seq: number;
  status: number;
  expires: number;
}

/** One change for this node's presence record. */
interface Change extends PresenceEntry {
  name: string;
}

/** The presence record this node has pending: later changes join it (a new version) while the pool takes them. */
interface Current {
  seq: number;
  id: string;
  entries: Map<number, Change>;
  versions: number;
}

/** Names the node claims: its domain and sip:user@domain for each user. */
export class PresenceBridge {
  private readonly chain: Chain;
  private readonly secret: Uint8Array;
  private readonly pub: Uint8Array;
  readonly nodeId: Uint8Array;
  private readonly network: string;
  private readonly feeRate: number;
  private readonly file: string;
  private claims = new Map<string, ClaimState>();
  private readonly wanted = new Set<string>();
  private readonly desired = new Map<string, Desired>();
  private readonly dirty = new Set<string>();
  /** names whose binding waits for the name or the node to be on the chain: looked at per tip */
  private readonly waiting = new Set<string>();
  private readonly bindings = new Map<string, Submitted>();
  /** this node's presence records by sequence, the id of the last version sent (pruned once not pending) */
  private readonly presenceIds = new Map<number, string>();
  private current: Current | null = null;
  private lastSeq = 0;
  private readonly pendingIds = new Map<string, string>(); // name -> id of a pending claim or renewal
  private readonly warned = new Set<string>();
  /** names wanted since the last pass over claims */
  private readonly fresh = new Set<string>();
  private claimsTip = '';
  private claimsDirty = false;
  private announceId = '';
  private announceSeq = 0;
  private running = false;
  private again = false;
  private stopped = false;
  private readonly timer: NodeJS.Timeout;
  private readonly onTip = (): void => this.kick();
  /** records this bridge submitted, by kind (for logs and tests) */
  stats = { announces: 0, commits: 0, claims: 0, renewals: 0, handovers: 0, bindings: 0, presenceRecords: 0, rejected: 0 };

  constructor(private readonly o: PresenceOptions) {
    this.chain = o.chain;
    this.secret = o.secret;
    this.pub = publicKeyOf(o.secret);
    this.nodeId = addressOf(this.pub);
    this.network = o.chain.params.name;
    this.feeRate = o.feeRate ?? o.chain.params.minFeeRate;
    this.file = join(o.datadir, PRESENCE_FILE);
    this.load();
    this.chain.on('tip', this.onTip);
    o.users.onAdded = (names): void => {
      for (const n of names) this.want(this.nameOf(n));
      this.kick();
    };
    this.timer = setInterval(() => {
      // renewals of online bindings, and retries of whatever did not go through
      for (const n of this.desired.keys()) this.dirty.add(n);
      this.kick();
    }, o.checkEveryMs ?? 5000).unref();
  }

  /** The name bound for a user of this node. */
  nameOf(user: string): string {
    return `sip:${user}@${this.o.domain}`;
  }

  private get active(): boolean {
    return this.o.openRegistration || this.o.users.size > 0;
  }

  start(): void {
    this.want(this.o.domain);
    for (const u of this.o.users.names()) this.want(this.nameOf(u));
    // bindings this node left online before a restart, for phones it no longer knows: offline
    const now = this.chain.clock();
    for (const [name, e] of allBindings(this.chain.state)) {
      if (e.status === BindingStatus.Online && e.expires > now && bytesEqual(e.node, this.nodeId)) {
        if (!this.desired.has(name)) {
          this.desired.set(name, { online: false, until: 0 });
          this.dirty.add(name);
        }
      }
    }
    this.kick();
  }

  /**
   * From the registrar: a phone of `aor` (a user of this node) is, or no longer is, verified
   * online until `untilSec`; the names the user's wallet claimed and delegated here follow it.
   */
  phone(aor: string, online: boolean, untilSec: number): void {
    this.presence(aor, online, untilSec);
    const users = this.o.users;
    if (!users.hasAliases) return;
    const user = aor.slice(4, aor.length - this.o.domain.length - 1);
    for (const alias of users.aliasesOf(user)) this.presence(alias, online, untilSec, false);
  }

  /**
   * From the registrar: `aor` has (or no longer has) a verified contact, until `untilSec`. The
   * user's aliases follow with `claim` false: the user claims those with a wallet and delegates
   * them to this node; the node only binds them.
   */
  presence(aor: string, online: boolean, untilSec: number, claim = true): void {
    const d = this.desired.get(aor);
    const flipped = d === undefined || d.online !== online;
    if (!flipped && (!online || d.until === untilSec)) return;
    if (d === undefined) this.desired.set(aor, { online, until: untilSec });
    else {
      d.online = online;
      d.until = untilSec;
    }
    if (online && claim && this.o.openRegistration) this.want(aor);
    // a mere extension of an online registration waits for the periodic pass
    if (flipped) {
      this.waiting.delete(aor);
      this.dirty.add(aor);
      this.kick();
    }
  }

  private want(name: string): void {
    if (this.wanted.has(name)) return;
    if (isValidName(name)) {
      this.wanted.add(name);
      this.fresh.add(name);
    }
    else if (!this.warned.has(name)) {
      this.warned.add(name);
      this.o.log.warn(`presence: "${name}" is not a valid chain name; it is served locally only`);
    }
  }

  private load(): void {
    if (!existsSync(this.file)) return;
    try {
      const f = JSON.parse(readFileSync(this.file, 'utf8')) as { version: number; claims: Record<string, ClaimState> };
      for (const [name, c] of Object.entries(f.claims ?? {})) if (isHex(c.salt, 32) && isHex(c.commit, 32)) this.claims.set(name, c);
    } catch (e) {
      this.o.log.warn(`presence: ignoring unreadable ${this.file}: ${(e as Error).message}`);
    }
  }

  private async save(): Promise<void> {
    await writeOwnerOnlyAsync(this.file, JSON.stringify({ version: 1, claims: Object.fromEntries(this.claims) }, null, 2) + '\n');
  }

  private scheduled: NodeJS.Timeout | null = null;
  private lastPassEnd = 0;
  private lastPassWrote = false;
  /** the pass under way wrote the salts file */
  private wroteSalts = false;

  /**
   * Runs a pass soon (see the delay below): a burst of new registrations costs one write of the
   * salts file per 100 ms and signatures in batches, not one pass each.
   */
  private kick(): void {
    if (this.stopped) return;
    if (this.running) {
      this.again = true;
      return;
    }
    if (this.scheduled !== null) return;
    // a change goes out almost at once (a phone registering is routable from other nodes within
    // milliseconds); passes that had to write the salts file (new names) are spaced 100 ms
    // apart, so in a burst of new users the changes of each 100 ms share a pass and a write
    const delay = Math.max(5, this.lastPassEnd + (this.lastPassWrote ? 100 : 10) - Date.now());
    this.scheduled = setTimeout(() => {
      this.scheduled = null;
      this.running = true;
      void this.reconcile()
        .catch((e: unknown) => this.o.log.warn(`presence: ${(e as Error).message}`))
        .finally(() => {
          this.running = false;
          this.lastPassEnd = Date.now();
          this.lastPassWrote = this.wroteSalts;
          this.wroteSalts = false;
          if (this.again && !this.stopped) {
            this.again = false;
            this.kick();
          }
        });
    }, delay);
  }

  private async submit(rec: Rec, what: string): Promise<boolean> {
    try {
      this.o.pool.add(rec);
      return true;
    } catch (e) {
      if (e instanceof ValidationError) {
        const once = e.code === 'name-fee-unpaid' ? what : e.code;
        if ((e.code === 'name-fee-unpaid' || e.code === 'fee-unpaid') && !this.warned.has(once)) {
          // names and records cost coins on this network: say once what the operator must do
          this.warned.add(once);
          this.o.log.warn(`presence: ${what} not accepted: ${e.message.slice(e.code.length + 2)}; the node's key pays for its names and records: mine (--mine) or send coins to its address`);
        }
        if (e.code === 'pool-full' && !this.warned.has(e.code)) {
          this.warned.add(e.code);
          this.o.log.warn(`presence: ${what} not accepted: ${e.message.slice(e.code.length + 2)}; raise --fee-rate`);
        }
        if (e.code !== 'already-pending') {
          this.stats.rejected++;
          this.o.log.debug(`presence: ${what} not accepted: ${e.message}`);
        }
        return e.code === 'already-pending';
      }
      throw e;
    }
  }

  /** Signs one of the node's records with its key, paying its fee rate. */
  private sign<T extends NodeAnnounce | NameCommit | NameClaim | NameRenew | NameTransfer | Presence>(unsigned: Unsigned<T>): Rec {
    return signRecord<T>(this.network, this.secret, unsigned, this.feeRate);
  }

  private pending(id: string): boolean {
    return id !== '' && this.o.pool.has(id);
  }

  private async reconcile(): Promise<void> {
    if (!this.active || this.stopped) return;
    await this.announce();
    let n = 0;
    // every name on a new tip; in between only the names newly wanted
    const tip = this.chain.tip.hex;
    const all = tip !== this.claimsTip;
    this.claimsTip = tip;
    if (all) {
      for (const n of this.waiting) this.dirty.add(n);
      this.waiting.clear();
    }
    const names = all ? [...this.wanted] : [...this.fresh];
    this.fresh.clear();
    const commits: Array<{ name: string; rec: Rec }> = [];
    for (const name of names) {
      const rec = await this.claim(name);
      if (rec !== null) commits.push({ name, rec });
      if (++n % 64 === 0 || commits.length >= 256) {
        await this.flushCommits(commits);
        await yieldNow(); // let SIP traffic through between batches of signatures
      }
      if (this.stopped) return;
    }
    await this.flushCommits(commits);
    if (getNode(this.chain.state, this.nodeId) === undefined) return;
    const changes: Change[] = [];
    for (const name of [...this.dirty]) {
      const r = this.bind(name, changes);
      // a change stays dirty until a presence record carrying it is accepted
      if (r !== 'change') this.dirty.delete(name);
      if (r === 'wait') this.waiting.add(name);
      if (++n % 1024 === 0) await yieldNow(); // a node of many users: let SIP traffic through
      if (this.stopped) return;
    }
    await this.sendPresence(changes);
  }

  /**
   * Sends the pass's changes in this node's presence record: a new version of the pending one
   * while the pool takes it (so the node pays for one record per block, however many changes),
   * else new records, each with a sequence above every one before.
   */
  private async sendPresence(changes: Change[]): Promise<void> {
    if (changes.length === 0) return;
    for (const [seq, id] of this.presenceIds) if (!this.pending(id)) this.presenceIds.delete(seq);
    let rest = changes;
    const cur = this.current;
    if (cur !== null && this.pending(cur.id) && cur.versions < MAX_PRESENCE_VERSIONS) {
      const entries = new Map(cur.entries);
      const took: Change[] = [];
      const left: Change[] = [];
      for (const c of rest) {
        if (entries.size < MAX_PRESENCE_ENTRIES || entries.has(c.ref)) {
          entries.set(c.ref, c);
          took.push(c);
        } else left.push(c);
      }
      if (took.length > 0) {
        const rec = this.presenceRecord(cur.seq, entries);
        // refused (another record of this node came after it, or the pool's cap on versions): a new sequence
        if (await this.submit(rec, `presence of ${took.length} user(s)`)) {
          this.current = { seq: cur.seq, id: toHex(rec.id), entries, versions: cur.versions + 1 };
          this.sent(took, cur.seq, toHex(rec.id));
          rest = left;
        }
      }
    }
    const st = this.chain.state;
    for (let i = 0; i < rest.length; i += MAX_PRESENCE_ENTRIES) {
      const chunk = rest.slice(i, i + MAX_PRESENCE_ENTRIES);
      // above everything this node sent before (time in ms: above what it sent before a restart too) and every slot it replaces
      let seq = Math.max(Date.now(), this.lastSeq + 1);
      for (const c of chunk) seq = Math.max(seq, seqAfter(getBinding(st, c.name), this.nodeId) + 1);
      const entries = new Map(chunk.map((c) => [c.ref, c]));
      const rec = this.presenceRecord(seq, entries);
      if (!(await this.submit(rec, `presence of ${chunk.length} user(s)`))) continue; // they stay dirty: the next pass tries again
      this.lastSeq = seq;
      this.current = { seq, id: toHex(rec.id), entries, versions: 1 };
      this.sent(chunk, seq, toHex(rec.id));
    }
  }

  private presenceRecord(seq: number, entries: Map<number, Change>): Rec {
    const list = [...entries.values()].sort((a, b) => a.ref - b.ref);
    let base = list[0].expires;
    for (const e of list) base = Math.min(base, e.expires);
    return this.sign<Presence>({ kind: Kind.Presence, pubkey: this.pub, seq, base, entries: list.map((e) => ({ ref: e.ref, status: e.status, expires: e.expires })) });
  }

  /** Changes a pending presence record now carries. */
  private sent(list: Change[], seq: number, id: string): void {
    this.presenceIds.set(seq, id);
    this.stats.presenceRecords++;
    for (const c of list) {
      this.bindings.set(c.name, { seq, status: c.status, expires: c.expires });
      this.dirty.delete(c.name);
      this.stats.bindings++;
      this.o.log.debug(`presence: ${c.name} ${c.status === BindingStatus.Online ? `online until ${c.expires}` : 'offline'} (seq ${seq})`);
      const d = this.desired.get(c.name);
      if (d !== undefined && !d.online && c.status === BindingStatus.Offline) this.desired.delete(c.name);
    }
  }

  /** Writes the new salts to disk, then sends their commitments. */
  private async flushCommits(commits: Array<{ name: string; rec: Rec }>): Promise<void> {
    if (this.claimsDirty) {
      this.claimsDirty = false;
      try {
        await this.save();
      } catch (e) {
        this.claimsDirty = true; // written next pass; commitments wait for their salts
        throw e;
      }
      this.wroteSalts = true;
    }
    for (const { name, rec } of commits) {
      if (await this.submit(rec, `commitment to ${name}`)) this.stats.commits++;
    }
    if (commits.length > 0) this.o.log.info(`presence: committed to ${commits.length} name(s), e.g. ${commits[0].name}`);
    commits.length = 0;
  }

  private async announce(): Promise<void> {
    const cur = getNode(this.chain.state, this.nodeId);
    const uris = this.o.sipUris();
    const p2p = (this.o.p2pAddrs?.() ?? []).slice(0, 8).filter((a) => a.length <= 256);
    const reward = this.nodeId;
    if (cur !== undefined && sameList(cur.sipUris, uris) && sameList(cur.p2pAddrs, p2p) && bytesEqual(cur.rewardAddress, reward)) return;
    if (this.pending(this.announceId)) return;
    const seq = Math.max(cur?.seq ?? 0, this.announceSeq) + 1;
    const rec = this.sign<NodeAnnounce>({ kind: Kind.NodeAnnounce, pubkey: this.pub, sipUris: uris, p2pAddrs: p2p, rewardAddress: reward, seq });
    if (await this.submit(rec, 'node announcement')) {
      this.announceId = toHex(rec.id);
      this.announceSeq = seq;
      this.stats.announces++;
      this.o.log.info(`presence: announcing node ${toHex(this.nodeId)} at ${uris[0]} (seq ${seq})`);
    }
  }

  /** Moves one name along commit, reveal, and renewal; returns a new commitment to send once its salt is saved. */
  private async claim(name: string): Promise<Rec | null> {
    const st = this.chain.state;
    const next = this.chain.tip.height + 1;
    const p = this.chain.params;
    const entry = getName(st, name);
    if (entry !== undefined && entry.expiry >= next) {
      if (!bytesEqual(entry.owner, this.pub)) {
        // a name its owner (a user's wallet) delegated here: this node binds it, never renews it
        if (servesName(entry, this.nodeId)) return null;
        if (!this.warned.has(name)) {
          this.warned.add(name);
          this.o.log.warn(`presence: ${name} is owned by another key; presence for it cannot go on the chain`);
        }
        return null;
      }
      if (this.claims.delete(name)) this.claimsDirty = true;
      if (await this.handOver(name, entry.seq)) return null;
      // renew when a tenth of the lifetime is left
      if (entry.expiry - next < Math.max(2, Math.floor(p.nameLifetime / 10)) && !this.pending(this.pendingIds.get(name) ?? '')) {
        const rec = this.sign<NameRenew>({ kind: Kind.NameRenew, name, pubkey: this.pub, nameSeq: entry.seq });
        if (await this.submit(rec, `renewal of ${name}`)) {
          this.pendingIds.set(name, toHex(rec.id));
          this.stats.renewals++;
        }
      }
      return null;
    }
    let c = this.claims.get(name);
    let commitment = c === undefined ? null : commitmentOf(name, fromHex(c.salt), this.pub);
    let ce = commitment === null ? undefined : (st.get(keys.commit(commitment)) as CommitEntry | undefined);
    if (c !== undefined && ce !== undefined && next > ce.height + p.maxCommitAge) {
      // the commitment aged out before the reveal: start over
      c = undefined;
      commitment = null;
      ce = undefined;
    }
    if (c === undefined) {
      const salt = randomBytes(32);
      commitment = commitmentOf(name, salt, this.pub);
      const rec = this.sign<NameCommit>({ kind: Kind.NameCommit, pubkey: this.pub, commitment });
      // the salt is on disk before the commitment can be on the chain (see flushCommits)
      this.claims.set(name, { salt: toHex(salt), commit: toHex(rec.id) });
      this.claimsDirty = true;
      return rec;
    }
    if (ce === undefined) {
      // not confirmed: pending, or lost (a restart empties the pool): send it again, same bytes
      if (!this.pending(c.commit)) {
        const rec = this.sign<NameCommit>({ kind: Kind.NameCommit, pubkey: this.pub, commitment: commitment as Uint8Array });
        await this.submit(rec, `commitment to ${name}`);
      }
      return null;
    }
    if (next < ce.height + p.minCommitAge || this.pending(this.pendingIds.get(name) ?? '')) return null;
    // a user's address is revealed once the node holds its domain (the chain refuses it before)
    const domain = domainOf(name);
    if (domain !== null) {
      const d = getName(st, domain);
      if (d === undefined || d.expiry < next || !actsFor(d, this.pub)) return null;
    }
    const rec = this.sign<NameClaim>({ kind: Kind.NameClaim, name, pubkey: this.pub, salt: fromHex(c.salt) });
    if (await this.submit(rec, `claim of ${name}`)) {
      this.pendingIds.set(name, toHex(rec.id));
      this.stats.claims++;
      this.o.log.info(`presence: claiming ${name}`);
    }
    return null;
  }

  /**
   * A user's address claimed for a user who is to own it (`dots user add --owner`): handed to the
   * user's key, with this node as the one serving it. True when the name is (being) handed over.
   */
  private async handOver(name: string, nameSeq: number): Promise<boolean> {
    const suffix = '@' + this.o.domain;
    if (!name.startsWith('sip:') || !name.endsWith(suffix)) return false;
    const owner = this.o.users.ownerOf(name.slice(4, -suffix.length));
    if (owner === undefined || bytesEqual(owner, this.pub)) return false;
    if (this.pending(this.pendingIds.get(name) ?? '')) return true;
    const rec = this.sign<NameTransfer>({ kind: Kind.NameTransfer, name, pubkey: this.pub, newOwner: owner, delegates: [this.nodeId], nameSeq });
    if (await this.submit(rec, `hand-over of ${name}`)) {
      this.pendingIds.set(name, toHex(rec.id));
      this.stats.handovers++;
      this.o.log.info(`presence: handing ${name} to its user's key ${toHex(owner).slice(0, 16)}..., served by this node`);
    }
    return true;
  }

  /**
   * Brings the chain's binding for `name` in line with the registrar: 'done', 'wait' (until the
   * name is this node's on the chain) or 'change' (one for this node's presence record, in `out`).
   */
  private bind(name: string, out: Change[]): 'done' | 'wait' | 'change' {
    const d = this.desired.get(name);
    if (d === undefined) return 'done';
    const st = this.chain.state;
    const n = getName(st, name);
    const next = this.chain.tip.height + 1;
    const mayBind = n !== undefined && n.expiry >= next && actsFor(n, this.pub) && servesName(n, this.nodeId);
    if (!mayBind) {
      if (d.online) return 'wait'; // for the claim to confirm
      this.desired.delete(name);
      return 'done';
    }
    const now = this.chain.clock();
    const entry = getBinding(st, name);
    // this node's own slot: other serving nodes' bindings are theirs to keep
    const confirmed = slotOf(entry, this.nodeId);
    const mine = this.bindings.get(name);
    const minePending = mine !== undefined && this.pending(this.presenceIds.get(mine.seq) ?? '');
    // what the chain says (pending first: it is what routing reads)
    let status = confirmed?.status ?? BindingStatus.Offline;
    let expires = confirmed?.expires ?? 0;
    let byMe = confirmed !== undefined;
    if (minePending && (confirmed === undefined || mine.seq > confirmed.seq)) {
      status = mine.status;
      expires = mine.expires;
      byMe = true;
    }
    const onlineByMe = byMe && status === BindingStatus.Online && expires > now;
    let want: { status: number; expires: number } | null = null;
    if (d.online) {
      const ttl = Math.min(d.until, now + this.chain.params.maxBindingTtl - 60) - now;
      if (ttl <= 0) return 'done';
      // renew once a third of the registration period is left on the chain's copy
      const margin = Math.max(30, Math.floor(ttl / 3));
      if (!onlineByMe || expires - now < margin) want = { status: BindingStatus.Online, expires: now + ttl };
    } else if (onlineByMe) want = { status: BindingStatus.Offline, expires: now };
    if (want === null) {
      if (!d.online) this.desired.delete(name);
      return 'done';
    }
    out.push({ name, ref: n.ref, status: want.status, expires: want.expires });
    return 'change';
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.timer);
    if (this.scheduled !== null) clearTimeout(this.scheduled);
    this.chain.off('tip', this.onTip);
    while (this.running) await new Promise((r) => setTimeout(r, 5));
  }
}

function sameList(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

function yieldNow(): Promise<void> {
  return new Promise((r) => setImmediate(r));
}
