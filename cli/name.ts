// `dots name ...`: names claimed, renewed, transferred and delegated with the wallet's key,
// through a running node's API. A claim is commit, wait until the commitment matured, reveal; the
// salt in between is kept beside the wallet (wallet/claims.ts).
import { randomBytes } from 'node:crypto';
import { UserError } from '../core/errors.ts';
import { NETWORKS } from '../consensus/params.ts';
import { publicKeyOf } from '../core/sig.ts';
import { signRecord, commitmentOf, domainOf, isValidName, Kind, MAX_DELEGATES, type NameCommit, type NameClaim, type NameRenew, type NameTransfer, type NameDelegate } from '../core/records.ts';
import { toHex, fromHex, isHex } from '../core/hash.ts';
import { addressOf } from '../core/address.ts';
import { readKeyFile } from '../wallet/keys.ts';
import { ClaimsFile } from '../wallet/claims.ts';
import { parse, publicKeyArg } from './args.ts';
import { WALLET_FLAGS, feeRateOf, onNode, walletOpts } from './wallet.ts';

function nameArg(s: string | undefined): string {
  const n = (s ?? '').toLowerCase();
  if (!isValidName(n)) throw new UserError(`"${s ?? ''}" is not a name: use sip:user@domain, an E.164 number like +15551234567, or a domain`);
  return n;
}

/** Node ids, comma-separated, in order of preference: the nodes that serve a name. */
export function nodeListArg(s: string, what: string): Uint8Array[] {
  if (s === '') return [];
  const ids = s.split(',').map((x) => x.trim().toLowerCase());
  for (const id of ids) if (!isHex(id, 20)) throw new UserError(`${what}: "${id}" is not a node id (40 hex digits; GET /api/nodes lists them)`);
  if (new Set(ids).size !== ids.length) throw new UserError(`${what}: a node is listed twice`);
  if (ids.length > MAX_DELEGATES) throw new UserError(`${what}: at most ${MAX_DELEGATES} nodes may serve a name`);
  return ids.map(fromHex);
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export async function runName(args: string[]): Promise<number> {
  const [sub, ...rest] = args;
  const wantPositionals = sub === 'transfer' || sub === 'delegate' ? 2 : 1;
  const { values, positionals } = parse(rest, { ...WALLET_FLAGS, 'no-wait': { type: 'boolean' }, delegates: { type: 'string' } }, wantPositionals);
  const name = nameArg(positionals[0]);
  const w = await onNode(walletOpts(values));
  const p = NETWORKS[w.network];
  if (sub === 'show') {
    const r = await w.api.name(name);
    console.log(r.body === null ? `${name} is not claimed` : JSON.stringify(r.body, null, 2));
    return 0;
  }
  const secret = readKeyFile(w.file, w.passphrase);
  const pub = publicKeyOf(secret);
  const rate = feeRateOf(w);
  const mustOwn = async (): Promise<number> => {
    const c = await w.api.name(name);
    if (c.owner !== toHex(pub)) throw new UserError(`${name} is not owned by this wallet${c.owner === null ? ' (not claimed)' : ''}`);
    return c.seq;
  };
  switch (sub) {
    case 'claim': {
      const c = await w.api.name(name);
      const next = (await w.api.height()) + 1;
      if (c.owner !== null && (c.expiry ?? 0) >= next) throw new UserError(`${name} is owned until height ${String(c.expiry)}`);
      // the chain takes an address only from its domain's owner or delegate: say so before committing
      const domain = domainOf(name);
      if (domain !== null) {
        const d = await w.api.name(domain);
        const held = d.owner === toHex(pub) || (d.body !== null && Array.isArray(d.body.delegates) && d.body.delegates.includes(toHex(addressOf(pub))));
        if (!held || (d.expiry ?? 0) < next) throw new UserError(`${name} is under ${domain}, which this wallet does not hold: claim ${domain} first (or have its owner claim ${name} and transfer it to this wallet)`);
      }
      const file = new ClaimsFile(w.file);
      const claims = file.load();
      let entry = claims[name];
      if (entry === undefined) {
        const salt = randomBytes(32);
        const rec = signRecord<NameCommit>(w.network, secret, { kind: Kind.NameCommit, pubkey: pub, commitment: commitmentOf(name, salt, pub) }, rate);
        entry = { salt: toHex(salt), commit: await w.api.submit(rec, 'commitment') };
        claims[name] = entry;
        file.save(claims);
        console.log(`committed to ${name} (record ${entry.commit}); the reveal needs ${p.minCommitAge} block(s) on top`);
      }
      if (values['no-wait'] === true) return 0;
      // Wait for the commitment to be buried deep enough, then reveal.
      for (;;) {
        const r = await w.api.request(`/api/records/${entry.commit}`);
        const tip = await w.api.height();
        if (r.status === 200 && r.body.confirmed === true && tip + 1 >= Number(r.body.height) + p.minCommitAge) break;
        await sleep(250);
      }
      const reveal = signRecord<NameClaim>(w.network, secret, { kind: Kind.NameClaim, name, pubkey: pub, salt: fromHex(entry.salt) }, rate);
      console.log(`claim of ${name} pending, record ${await w.api.submit(reveal, 'claim')}`);
      delete claims[name];
      file.save(claims);
      return 0;
    }
    case 'renew': {
      const rec = signRecord<NameRenew>(w.network, secret, { kind: Kind.NameRenew, name, pubkey: pub, nameSeq: await mustOwn() }, rate);
      console.log(`renewal of ${name} pending, record ${await w.api.submit(rec, 'renewal')}`);
      return 0;
    }
    case 'transfer': {
      const to = publicKeyArg(positionals[1] ?? '', 'the new owner');
      const delegates = nodeListArg(String(values.delegates ?? ''), '--delegates');
      const rec = signRecord<NameTransfer>(w.network, secret, { kind: Kind.NameTransfer, name, pubkey: pub, newOwner: to, delegates, nameSeq: await mustOwn() }, rate);
      console.log(`transfer of ${name} pending, record ${await w.api.submit(rec, 'transfer')}`);
      return 0;
    }
    case 'delegate': {
      const arg = positionals[1] ?? '';
      const nodes = arg === 'none' ? [] : nodeListArg(arg, 'the nodes');
      if (nodes.length === 0 && arg !== 'none') throw new UserError('name the nodes: node ids of 40 hex digits, comma-separated in order of preference (GET /api/nodes lists them), or "none"');
      const rec = signRecord<NameDelegate>(w.network, secret, { kind: Kind.NameDelegate, name, pubkey: pub, nodes, nameSeq: await mustOwn() }, rate);
      console.log(`delegation of ${name} pending, record ${await w.api.submit(rec, 'delegation')}`);
      return 0;
    }
    default:
      throw new UserError(`unknown name command "${sub ?? ''}" (claim, renew, transfer, delegate, show)`);
  }
}
