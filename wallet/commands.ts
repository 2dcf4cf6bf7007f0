// `dots wallet ...` and `dots name ...`: a wallet key file on this machine, and a running node's
// API for the chain's view (balances, nonces, names) and for submitting signed records.
import { resolve, join } from 'node:path';
import { existsSync, readFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { UserError } from '../core/errors.ts';
import { parse, networkOf } from '../core/args.ts';
import { NETWORKS, type NetworkName } from '../consensus/params.ts';
import { addressOf, encodeAddress, decodeAddress } from '../core/address.ts';
import { publicKeyOf, generateSecretKey, isValidPublicKey } from '../core/sig.ts';
import { writeKeyFile, readKeyFile } from './keys.ts';
import { writeOwnerOnly } from '../core/files.ts';
import {
  signRecord,
  commitmentOf,
  isValidName,
  Kind,
  type Rec,
  type Transfer,
  type NameCommit,
  type NameClaim,
  type NameRenew,
  type NameTransfer,
  type NameDelegate,
} from '../core/records.ts';
import { toHex, fromHex, isHex } from '../core/hash.ts';

interface WalletOpts {
  file: string;
  network: NetworkName;
  api: string;
  passphrase?: string;
}

const COMMON = { wallet: { type: 'string' }, passphrase: { type: 'string' }, network: { type: 'string' }, api: { type: 'string' } } as const;

function walletOpts(v: Record<string, unknown>): WalletOpts {
  const network = networkOf(v.network);
  return {
    network,
    file: resolve(String(v.wallet ?? join('data', network, 'wallet.key'))),
    api: String(v.api ?? 'http://127.0.0.1:8080').replace(/\/$/, ''),
    passphrase: (v.passphrase as string | undefined) ?? process.env.DOTS_PASSPHRASE,
  };
}

async function api(base: string, path: string, body?: unknown): Promise<{ status: number; body: Record<string, unknown> }> {
  let res: Response;
  try {
    res = await fetch(base + path, body === undefined ? undefined : { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  } catch {
    throw new UserError(`cannot reach a node API at ${base} (is dots node running? pass --api URL)`);
  }
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

async function apiGet(base: string, path: string): Promise<Record<string, unknown>> {
  const r = await api(base, path);
  if (r.status !== 200) throw new UserError(`node answered ${r.status}: ${String(r.body.error)}`);
  return r.body;
}

async function submit(base: string, rec: Rec, what: string): Promise<string> {
  const r = await api(base, '/api/records', { record: toHex(rec.bytes) });
  if (r.status !== 202) throw new UserError(`${what} rejected: ${String(r.body.error)}`);
  return String(r.body.id);
}

function whole(s: string | undefined, what: string, min = 0): number {
  if (s === undefined || !/^[0-9]+$/.test(s) || !Number.isSafeInteger(Number(s)) || Number(s) < min) throw new UserError(`${what} must be a whole number${min > 0 ? ` of at least ${min}` : ''}, got "${s ?? ''}"`);
  return Number(s);
}

export async function runWallet(args: string[]): Promise<number> {
  const [sub, ...rest] = args;
  const { values, positionals } = parse(rest, { ...COMMON, fee: { type: 'string' } }, sub === 'send' ? 2 : 0);
  const w = walletOpts(values);
  const prefix = NETWORKS[w.network].addressPrefix;
  switch (sub) {
    case 'new': {
      if (existsSync(w.file)) throw new UserError(`${w.file} exists already; pass --wallet FILE for another`);
      if (w.passphrase === undefined) throw new UserError('give a passphrase with --passphrase or DOTS_PASSPHRASE to encrypt the new key');
      const secret = generateSecretKey();
      writeKeyFile(w.file, secret, w.passphrase);
      console.log(`wallet  ${w.file}`);
      console.log(`address ${encodeAddress(prefix, addressOf(publicKeyOf(secret)))}`);
      console.log(`pubkey  ${toHex(publicKeyOf(secret))}`);
      return 0;
    }
    case 'address': {
      const pub = publicKeyOf(readKeyFile(w.file, w.passphrase));
      console.log(`address ${encodeAddress(prefix, addressOf(pub))}`);
      console.log(`pubkey  ${toHex(pub)}`);
      return 0;
    }
    case 'balance': {
      const secret = readKeyFile(w.file, w.passphrase);
      const a = await apiGet(w.api, `/api/accounts/${encodeAddress(prefix, addressOf(publicKeyOf(secret)))}`);
      console.log(`${String(a.address)} balance ${String(a.balance)} nonce ${String(a.nonce)}`);
      return 0;
    }
    case 'send': {
      const [to, amountStr] = positionals;
      if (to === undefined || amountStr === undefined) throw new UserError('usage: dots wallet send ADDRESS AMOUNT [--fee N]');
      const toAddr = decodeAddress(prefix, to);
      const amount = whole(amountStr, 'AMOUNT', 1);
      const fee = whole(String(values.fee ?? '0'), '--fee');
      const secret = readKeyFile(w.file, w.passphrase);
      const pub = publicKeyOf(secret);
      const acct = await apiGet(w.api, `/api/accounts/${encodeAddress(prefix, addressOf(pub))}`);
      const rec = signRecord<Transfer>(w.network, secret, { kind: Kind.Transfer, pubkey: pub, to: toAddr, amount, fee, nonce: Number(acct.nonce) });
      console.log(`sent, record ${await submit(w.api, rec, 'transfer')} pending`);
      return 0;
    }
    case 'history': {
      const secret = readKeyFile(w.file, w.passphrase);
      const addr = encodeAddress(prefix, addressOf(publicKeyOf(secret)));
      const h = await apiGet(w.api, `/api/accounts/${addr}/history?limit=100`);
      const line = (when: string, kind: string, delta: number, id: string): void => console.log(`${when.padEnd(12)} ${kind.padEnd(14)} ${(delta > 0 ? '+' : '') + String(delta)} ${id}`);
      for (const p of h.pending as Array<{ kind: string; delta: number; id: string }>) line('pending', p.kind, p.delta, p.id);
      for (const it of h.items as Array<{ kind: string; delta: number; id: string; height: number }>) line(`block ${it.height}`, it.kind, it.delta, it.id);
      if ((h.items as unknown[]).length === 0 && (h.pending as unknown[]).length === 0) console.log(`nothing yet for ${addr}`);
      return 0;
    }
    default:
      throw new UserError(`unknown wallet command "${sub ?? ''}" (new, address, balance, send, history)`);
  }
}

function nameArg(s: string | undefined): string {
  const n = (s ?? '').toLowerCase();
  if (!isValidName(n)) throw new UserError(`"${s ?? ''}" is not a name: use sip:user@domain, an E.164 number like +15551234567, or a domain`);
  return n;
}

/** Salts of commitments made but not yet revealed, kept beside the wallet (owner-only). */
function claimsFile(w: WalletOpts): string {
  return `${w.file}.claims.json`;
}
function loadClaims(w: WalletOpts): Record<string, { salt: string; commit: string }> {
  const f = claimsFile(w);
  return existsSync(f) ? (JSON.parse(readFileSync(f, 'utf8')) as Record<string, { salt: string; commit: string }>) : {};
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export async function runName(args: string[]): Promise<number> {
  const [sub, ...rest] = args;
  const wantPositionals = sub === 'transfer' || sub === 'delegate' ? 2 : 1;
  const { values, positionals } = parse(rest, { ...COMMON, 'no-wait': { type: 'boolean' } }, wantPositionals);
  const w = walletOpts(values);
  const name = nameArg(positionals[0]);
  const p = NETWORKS[w.network];
  if (sub === 'show') {
    const r = await api(w.api, `/api/names/${encodeURIComponent(name)}`);
    if (r.status === 404) {
      console.log(`${name} is not claimed`);
      return 0;
    }
    if (r.status !== 200) throw new UserError(String(r.body.error));
    console.log(JSON.stringify(r.body, null, 2));
    return 0;
  }
  const secret = readKeyFile(w.file, w.passphrase);
  const pub = publicKeyOf(secret);
  const current = async (): Promise<{ seq: number; owner: string | null; expiry: number | null }> => {
    const r = await api(w.api, `/api/names/${encodeURIComponent(name)}`);
    if (r.status === 404) return { seq: 0, owner: null, expiry: null };
    return { seq: Number(r.body.seq ?? 0), owner: (r.body.owner as string | null) ?? null, expiry: (r.body.expiry as number | null) ?? null };
  };
  const mustOwn = async (): Promise<number> => {
    const c = await current();
    if (c.owner !== toHex(pub)) throw new UserError(`${name} is not owned by this wallet${c.owner === null ? ' (not claimed)' : ''}`);
    return c.seq;
  };
  switch (sub) {
    case 'claim': {
      const c = await current();
      const status = await apiGet(w.api, '/api/status');
      if (c.owner !== null && (c.expiry ?? 0) >= Number(status.height) + 1) throw new UserError(`${name} is owned until height ${String(c.expiry)}`);
      const claims = loadClaims(w);
      let entry = claims[name];
      if (entry === undefined) {
        const salt = randomBytes(32);
        const rec = signRecord<NameCommit>(w.network, secret, { kind: Kind.NameCommit, pubkey: pub, commitment: commitmentOf(name, salt, pub) });
        entry = { salt: toHex(salt), commit: await submit(w.api, rec, 'commitment') };
        claims[name] = entry;
        writeOwnerOnly(claimsFile(w), JSON.stringify(claims, null, 2) + '\n');
        console.log(`committed to ${name} (record ${entry.commit}); the reveal needs ${p.minCommitAge} block(s) on top`);
      }
      if (values['no-wait'] === true) return 0;
      // Wait for the commitment to be buried deep enough, then reveal.
      for (;;) {
        const r = await api(w.api, `/api/records/${entry.commit}`);
        const tip = Number((await apiGet(w.api, '/api/status')).height);
        if (r.status === 200 && r.body.confirmed === true && tip + 1 >= Number(r.body.height) + p.minCommitAge) break;
        await sleep(250);
      }
      const reveal = signRecord<NameClaim>(w.network, secret, { kind: Kind.NameClaim, name, pubkey: pub, salt: fromHex(entry.salt) });
      console.log(`claim of ${name} pending, record ${await submit(w.api, reveal, 'claim')}`);
      delete claims[name];
      writeOwnerOnly(claimsFile(w), JSON.stringify(claims, null, 2) + '\n');
      return 0;
    }
    case 'renew': {
      const rec = signRecord<NameRenew>(w.network, secret, { kind: Kind.NameRenew, name, pubkey: pub, nameSeq: await mustOwn() });
      console.log(`renewal of ${name} pending, record ${await submit(w.api, rec, 'renewal')}`);
      return 0;
    }
    case 'transfer': {
      const to = positionals[1] ?? '';
      if (!isHex(to, 33) || !isValidPublicKey(fromHex(to))) throw new UserError('the new owner must be a public key, 66 hex digits (dots wallet address shows it)');
      const rec = signRecord<NameTransfer>(w.network, secret, { kind: Kind.NameTransfer, name, pubkey: pub, newOwner: fromHex(to), nameSeq: await mustOwn() });
      console.log(`transfer of ${name} pending, record ${await submit(w.api, rec, 'transfer')}`);
      return 0;
    }
    case 'delegate': {
      const node = positionals[1] ?? '';
      if (node !== 'none' && !isHex(node, 20)) throw new UserError('the node must be a node id, 40 hex digits (GET /api/nodes lists them), or "none"');
      const rec = signRecord<NameDelegate>(w.network, secret, { kind: Kind.NameDelegate, name, pubkey: pub, node: node === 'none' ? new Uint8Array(0) : fromHex(node), nameSeq: await mustOwn() });
      console.log(`delegation of ${name} pending, record ${await submit(w.api, rec, 'delegation')}`);
      return 0;
    }
    default:
      throw new UserError(`unknown name command "${sub ?? ''}" (claim, renew, transfer, delegate, show)`);
  }
}
