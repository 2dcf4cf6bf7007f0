// `dots wallet ...`: a wallet key file on this machine (wallet/keys.ts), and a running node's API
// (wallet/client.ts) for balances, nonces and history and for submitting signed transfers.
import { resolve, join } from 'node:path';
import { existsSync } from 'node:fs';
import { UserError } from '../core/errors.ts';
import { COIN, NETWORKS, NODE_DEFAULTS, isNetworkName, type NetworkName } from '../consensus/params.ts';
import { addressOf, encodeAddress, decodeAddress } from '../core/address.ts';
import { publicKeyOf, generateSecretKey } from '../core/sig.ts';
import { signRecord, Kind, type Transfer } from '../core/records.ts';
import { toHex } from '../core/hash.ts';
import { LOCALHOST } from '../node/config.ts';
import { NodeApi } from '../wallet/client.ts';
import { writeKeyFile, readKeyFile } from '../wallet/keys.ts';
import { parse, networkOf } from './args.ts';

export interface WalletOpts {
  file: string;
  network: NetworkName;
  api: NodeApi;
  passphrase?: string;
  /** whether --network and --wallet were given (else the node's network, and its default wallet) */
  given: { network: boolean; wallet: boolean };
  /** --fee-rate: units per byte the records pay (else the network's least) */
  feeRate?: number;
}

/** The fee rate a wallet's records pay: --fee-rate, or the least its network takes. */
export function feeRateOf(w: WalletOpts): number {
  return w.feeRate ?? NETWORKS[w.network].minFeeRate;
}

/** Flags every wallet and name command takes. */
export const WALLET_FLAGS = { wallet: { type: 'string' }, passphrase: { type: 'string' }, network: { type: 'string' }, api: { type: 'string' }, 'fee-rate': { type: 'string' } } as const;

export function walletOpts(v: Record<string, unknown>): WalletOpts {
  const network = networkOf(v.network);
  const d = NODE_DEFAULTS[network];
  return {
    network,
    file: resolve(String(v.wallet ?? join(d.datadir, 'wallet.key'))),
    api: new NodeApi(String(v.api ?? `http://${LOCALHOST}:${d.apiPort}`)),
    passphrase: (v.passphrase as string | undefined) ?? process.env.DOTS_PASSPHRASE,
    given: { network: v.network !== undefined, wallet: v.wallet !== undefined },
    feeRate: v['fee-rate'] === undefined ? undefined : whole(String(v['fee-rate']), '--fee-rate (units per byte)'),
  };
}

/**
 * The wallet options for a command that talks to the node: the network is the one the node runs
 * (its addresses and signatures belong to it), and a --network that says otherwise is refused
 * in one line rather than answered "belongs to another network".
 */
export async function onNode(w: WalletOpts): Promise<WalletOpts> {
  const runs = String((await w.api.get('/api/status')).network);
  if (!isNetworkName(runs)) throw new UserError(`the node at ${w.api.base} runs an unknown network "${runs}"`);
  if (w.given.network && runs !== w.network) throw new UserError(`the node at ${w.api.base} runs ${runs}, not ${w.network}: drop --network, or pass --api URL of a ${w.network} node`);
  const file = w.given.wallet ? w.file : resolve(join(NODE_DEFAULTS[runs].datadir, 'wallet.key'));
  return { ...w, network: runs, file };
}

/** Units as coins with the unit (1 DOTS = 100,000,000 units): 250000 is "0.00250000 DOTS". */
export function coins(units: number): string {
  const sign = units < 0 ? '-' : '';
  const a = Math.abs(units);
  return `${sign}${Math.floor(a / COIN)}.${String(a % COIN).padStart(8, '0')} DOTS`;
}

function whole(s: string | undefined, what: string, min = 0): number {
  if (s === undefined || !/^[0-9]+$/.test(s) || !Number.isSafeInteger(Number(s)) || Number(s) < min) throw new UserError(`${what} must be a whole number${min > 0 ? ` of at least ${min}` : ''}, got "${s ?? ''}"`);
  return Number(s);
}

export async function runWallet(args: string[]): Promise<number> {
  const [sub, ...rest] = args;
  const { values, positionals } = parse(rest, { ...WALLET_FLAGS, fee: { type: 'string' }, units: { type: 'boolean' } }, sub === 'send' ? 2 : 0);
  // new and address work offline (--network, default devnet); the rest ask the node which network it runs
  const given = walletOpts(values);
  // what can be checked without the node is checked first: an address of the network named
  if (sub === 'send' && given.given.network && positionals[0] !== undefined) decodeAddress(NETWORKS[given.network].addressPrefix, positionals[0]);
  const w = sub === 'new' || sub === 'address' ? given : await onNode(given);
  const prefix = NETWORKS[w.network].addressPrefix;
  const amount = (units: number, signed = false): string => (signed && units > 0 ? '+' : '') + (values.units === true ? String(units) : coins(units));
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
      const a = await w.api.get(`/api/accounts/${encodeAddress(prefix, addressOf(publicKeyOf(secret)))}`);
      const units = Number(a.balance);
      console.log(`${String(a.address)} balance ${amount(units)}${values.units === true ? '' : ` (${units} units)`} nonce ${String(a.nonce)}`);
      return 0;
    }
    case 'send': {
      const [to, amountStr] = positionals;
      if (to === undefined || amountStr === undefined) throw new UserError('usage: dots wallet send ADDRESS AMOUNT [--fee N | --fee-rate N]');
      const toAddr = decodeAddress(prefix, to);
      const units = whole(amountStr, 'AMOUNT (in units: 100000000 is 1 DOTS)', 1);
      const fee = values.fee === undefined ? undefined : whole(String(values.fee), '--fee');
      const secret = readKeyFile(w.file, w.passphrase);
      const pub = publicKeyOf(secret);
      const acct = await w.api.get(`/api/accounts/${encodeAddress(prefix, addressOf(pub))}`);
      const rec = signRecord<Transfer>(w.network, secret, { kind: Kind.Transfer, pubkey: pub, to: toAddr, amount: units, fee, nonce: Number(acct.nonce) }, feeRateOf(w));
      console.log(`sent ${coins(units)} (${units} units, fee ${(rec.body as Transfer).fee}), record ${await w.api.submit(rec, 'transfer')} pending`);
      return 0;
    }
    case 'history': {
      const secret = readKeyFile(w.file, w.passphrase);
      const addr = encodeAddress(prefix, addressOf(publicKeyOf(secret)));
      const h = await w.api.get(`/api/accounts/${addr}/history?limit=100`);
      const line = (when: string, kind: string, delta: number, id: string): void => console.log(`${when.padEnd(12)} ${kind.padEnd(14)} ${amount(delta, true)} ${id}`);
      for (const p of h.pending as Array<{ kind: string; delta: number; id: string }>) line('pending', p.kind, p.delta, p.id);
      for (const it of h.items as Array<{ kind: string; delta: number; id: string; height: number }>) line(`block ${it.height}`, it.kind, it.delta, it.id);
      if ((h.items as unknown[]).length === 0 && (h.pending as unknown[]).length === 0) console.log(`nothing yet for ${addr}`);
      return 0;
    }
    default:
      throw new UserError(`unknown wallet command "${sub ?? ''}" (new, address, balance, send, history)`);
  }
}

