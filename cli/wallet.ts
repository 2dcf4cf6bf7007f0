// `dots wallet ...`: a wallet key file on this machine (wallet/keys.ts), and a running node's API
// (wallet/client.ts) for balances, nonces and history and for submitting signed transfers.
import { resolve, join } from 'node:path';
import { existsSync } from 'node:fs';
import { UserError } from '../core/errors.ts';
import { NETWORKS, NODE_DEFAULTS, type NetworkName } from '../consensus/params.ts';
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
}

/** Flags every wallet and name command takes. */
export const WALLET_FLAGS = { wallet: { type: 'string' }, passphrase: { type: 'string' }, network: { type: 'string' }, api: { type: 'string' } } as const;

export function walletOpts(v: Record<string, unknown>): WalletOpts {
  const network = networkOf(v.network);
  const d = NODE_DEFAULTS[network];
  return {
    network,
    file: resolve(String(v.wallet ?? join(d.datadir, 'wallet.key'))),
    api: new NodeApi(String(v.api ?? `http://${LOCALHOST}:${d.apiPort}`)),
    passphrase: (v.passphrase as string | undefined) ?? process.env.DOTS_PASSPHRASE,
  };
}

function whole(s: string | undefined, what: string, min = 0): number {
  if (s === undefined || !/^[0-9]+$/.test(s) || !Number.isSafeInteger(Number(s)) || Number(s) < min) throw new UserError(`${what} must be a whole number${min > 0 ? ` of at least ${min}` : ''}, got "${s ?? ''}"`);
  return Number(s);
}

export async function runWallet(args: string[]): Promise<number> {
  const [sub, ...rest] = args;
  const { values, positionals } = parse(rest, { ...WALLET_FLAGS, fee: { type: 'string' } }, sub === 'send' ? 2 : 0);
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
      const a = await w.api.get(`/api/accounts/${encodeAddress(prefix, addressOf(publicKeyOf(secret)))}`);
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
      const acct = await w.api.get(`/api/accounts/${encodeAddress(prefix, addressOf(pub))}`);
      const rec = signRecord<Transfer>(w.network, secret, { kind: Kind.Transfer, pubkey: pub, to: toAddr, amount, fee, nonce: Number(acct.nonce) });
      console.log(`sent, record ${await w.api.submit(rec, 'transfer')} pending`);
      return 0;
    }
    case 'history': {
      const secret = readKeyFile(w.file, w.passphrase);
      const addr = encodeAddress(prefix, addressOf(publicKeyOf(secret)));
      const h = await w.api.get(`/api/accounts/${addr}/history?limit=100`);
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

