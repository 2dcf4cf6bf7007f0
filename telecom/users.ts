// SIP accounts of this node (`dots user add`): digest credentials for standard phones. Only HA1
// values are kept (MD5 and SHA-256 of user:realm:password, realm = the node's SIP domain), never
// the password, in DATADIR/users.json, owner-only and written atomically. A running node picks
// up accounts added while it runs: it re-reads the file when it changed (checked on a lookup
// miss and every few seconds), so no restart is needed.
import { readFileSync, statSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { UserError } from '../core/errors.ts';
import { withFileLock, writeOwnerOnly } from '../core/files.ts';
import { credentialsFor, type DigestCredentials } from '../sip/digest.ts';
import { isValidName } from '../core/records.ts';
import { fromHex, isHex } from '../core/hash.ts';

export const USERS_FILE = 'users.json';

/** Lower-case SIP user parts that are also valid chain names: letters, digits, . _ - + (E.164 style too). */
const USER_RE = /^[a-z0-9+][a-z0-9._+-]{0,63}$/;

export function isValidUserName(name: string): boolean {
  return USER_RE.test(name);
}

/** An alias is a chain name a phone can be dialled by: an E.164 number or a sip:/sips: address. */
export function isAliasName(name: string): boolean {
  return isValidName(name) && (name.startsWith('+') || name.startsWith('sip'));
}

interface UserEntry {
  realm: string;
  md5: string;
  sha256: string;
  /**
   * other chain names that reach this user (an E.164 number, a sip: name in another domain),
   * claimed by the user's own wallet and delegated to this node
   */
  aliases?: string[];
  /**
   * the public key (hex) the user's address is handed to once the node has claimed it: the user
   * then owns the name (the node serves it as a delegate and can never take it back)
   */
  owner?: string;
  /**
   * the user's phone registers at the operator's own SIP server, which the node reaches over
   * its trunk (`dots node --trunk`): no credentials here, presence by OPTIONS through the trunk
   */
  trunk?: true;
}

interface UsersFile {
  version: 1;
  users: Record<string, UserEntry>;
}

function readUsersFile(path: string): UsersFile {
  if (!existsSync(path)) return { version: 1, users: {} };
  let f: UsersFile;
  try {
    f = JSON.parse(readFileSync(path, 'utf8')) as UsersFile;
  } catch {
    throw new UserError(`${path} is not a DOTS users file (not JSON)`);
  }
  if (f === null || typeof f !== 'object' || f.version !== 1 || typeof f.users !== 'object' || f.users === null) throw new UserError(`${path} is not a DOTS users file`);
  return f;
}

/**
 * Adds (or replaces the password, aliases and owner of) an account; returns whether it existed.
 * A trunk user (password null) has no credentials here: its phone is the operator's server's.
 */
export function addUser(datadir: string, name: string, password: string | null, realm: string, aliases: string[] = [], owner?: string): boolean {
  if (password !== null && password.length === 0) throw new UserError('the password must not be empty');
  return addUsers(datadir, [{ name, password, aliases, owner }], realm).length > 0;
}

/** Adds or replaces many accounts in one write (the benchmark creates thousands); returns those that existed. */
export function addUsers(datadir: string, entries: Array<{ name: string; password: string | null; aliases?: string[]; owner?: string }>, realm: string): string[] {
  for (const { name, aliases } of entries) {
    if (!isValidUserName(name)) throw new UserError(`user name "${name}" must be 1-64 lower-case letters, digits, ".", "_", "-" or "+"`);
    for (const a of aliases ?? []) if (!isAliasName(a)) throw new UserError(`alias "${a}" is not a name: use an E.164 number like +15551234567 or sip:user@domain, in lower case`);
  }
  const creds = entries.map(({ name, password, aliases, owner }) => [name, { realm, ...(password === null ? { md5: '', sha256: '', trunk: true as const } : credentialsFor(name, realm, password)), ...(aliases !== undefined && aliases.length > 0 ? { aliases } : {}), ...(owner !== undefined ? { owner } : {}) }] as const);
  const path = join(datadir, USERS_FILE);
  // read, change and write under a lock: two `dots user add` at once must both land
  return withFileLock(path, () => {
    const f = readUsersFile(path);
    const existed = creds.filter(([name]) => Object.hasOwn(f.users, name)).map(([name]) => name);
    for (const [name, c] of creds) f.users[name] = c;
    writeOwnerOnly(path, JSON.stringify(f, null, 2) + '\n');
    return existed;
  });
}

/** The accounts as a running node sees them, reloaded when the file changes. */
export class UserStore {
  readonly path: string;
  private users = new Map<string, DigestCredentials>();
  /** users whose phones register at the operator's server behind the trunk */
  private trunk = new Set<string>();
  /** alias name -> user, and user -> its aliases */
  private aliasOwner = new Map<string, string>();
  private aliasesByUser = new Map<string, string[]>();
  /** user -> the key its address is handed to */
  private owners = new Map<string, Uint8Array>();
  private stamp = '';
  private lastCheck = 0;
  private readonly timer: NodeJS.Timeout;
  /** called after a reload with the names that appeared */
  onAdded: ((names: string[]) => void) | null = null;
  /** accounts whose realm is not this node's domain (they cannot authenticate) */
  foreignRealm: string[] = [];

  constructor(
    datadir: string,
    readonly realm: string,
    private readonly warn: (msg: string) => void = () => undefined,
    checkEveryMs = 2000,
  ) {
    this.path = join(datadir, USERS_FILE);
    this.reload();
    this.timer = setInterval(() => this.refresh(), checkEveryMs).unref();
  }

  get size(): number {
    return this.users.size + this.trunk.size;
  }

  /** Every user, its own phones' and the trunk's: the node claims and binds each one's address. */
  names(): string[] {
    return [...this.users.keys(), ...this.trunk];
  }

  /** Users whose phones register at the operator's server (`dots user add NAME --trunk`). */
  trunkUsers(): string[] {
    return [...this.trunk];
  }

  isTrunkUser(name: string): boolean {
    return this.trunk.has(name);
  }

  lookup(name: string): DigestCredentials | undefined {
    const c = this.users.get(name);
    if (c !== undefined) return c;
    // an account added while running: look again, at most once a second
    const now = Date.now();
    if (now - this.lastCheck < 1000) return undefined;
    this.lastCheck = now;
    this.refresh();
    return this.users.get(name);
  }

  /** The user an alias reaches (an E.164 number or another sip: name), if any. */
  userOfAlias(name: string): string | undefined {
    return this.aliasOwner.get(name);
  }

  /** The key a user's address belongs to (`dots user add --owner`), if the user is to own it. */
  ownerOf(user: string): Uint8Array | undefined {
    return this.owners.get(user);
  }

  aliasesOf(user: string): readonly string[] {
    return this.aliasesByUser.get(user) ?? NO_ALIASES;
  }

  /** Whether any account has an alias (the registrar's hot path skips the lookup when none has). */
  get hasAliases(): boolean {
    return this.aliasesByUser.size > 0;
  }

  /** Re-reads the file if it changed since the last read. */
  refresh(): void {
    let stamp = '';
    try {
      const st = statSync(this.path);
      stamp = `${st.ino}:${st.size}:${st.mtimeMs}`;
    } catch {
      stamp = 'absent';
    }
    if (stamp !== this.stamp) this.reload(stamp);
  }

  private reload(stamp?: string): void {
    let f: UsersFile;
    try {
      f = readUsersFile(this.path);
      if (stamp === undefined) {
        try {
          const st = statSync(this.path);
          stamp = `${st.ino}:${st.size}:${st.mtimeMs}`;
        } catch {
          stamp = 'absent';
        }
      }
    } catch (e) {
      this.warn(`users: ${(e as Error).message}; keeping the accounts loaded before`);
      return;
    }
    this.stamp = stamp;
    const next = new Map<string, DigestCredentials>();
    const trunk = new Set<string>();
    const owners = new Map<string, string>();
    const byUser = new Map<string, string[]>();
    const userOwners = new Map<string, Uint8Array>();
    const foreign: string[] = [];
    for (const [name, e] of Object.entries(f.users)) {
      if (!isValidUserName(name) || typeof e?.md5 !== 'string' || typeof e.sha256 !== 'string') continue;
      if (e.realm !== this.realm) {
        foreign.push(name);
        continue;
      }
      if (e.trunk === true) trunk.add(name);
      else next.set(name, { md5: e.md5, sha256: e.sha256 });
      const aliases = Array.isArray(e.aliases) ? e.aliases.filter((a) => typeof a === 'string' && isAliasName(a) && !owners.has(a)) : [];
      for (const a of aliases) owners.set(a, name);
      if (aliases.length > 0) byUser.set(name, aliases);
      if (typeof e.owner === 'string' && isHex(e.owner, 33)) userOwners.set(name, fromHex(e.owner));
    }
    this.aliasOwner = owners;
    this.owners = userOwners;
    this.aliasesByUser = byUser;
    if (foreign.length > 0 && foreign.join() !== this.foreignRealm.join()) {
      this.warn(`users: ${foreign.length} account(s) were added for another SIP domain and cannot log in here (re-add them with --domain ${this.realm}): ${foreign.slice(0, 5).join(', ')}`);
    }
    this.foreignRealm = foreign;
    const added = [...next.keys(), ...trunk].filter((n) => !this.users.has(n) && !this.trunk.has(n));
    this.users = next;
    this.trunk = trunk;
    if (added.length > 0) this.onAdded?.(added);
  }

  stop(): void {
    clearInterval(this.timer);
  }
}

const NO_ALIASES: readonly string[] = [];
