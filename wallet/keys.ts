// Key files. A wallet key is encrypted with scrypt (memory-hard) and AES-256-GCM (authenticated),
// so a wrong passphrase or a tampered file is detected, never silently decrypted to garbage.
// Every key file is created with owner-only permissions and written atomically (temp + rename).
import { randomBytes, scryptSync, createCipheriv, createDecipheriv } from 'node:crypto';
import { readFileSync, existsSync, statSync } from 'node:fs';
import { writeOwnerOnly } from '../core/files.ts';
import { UserError } from '../core/errors.ts';
import { toHex, fromHex, isHex } from '../core/hash.ts';
import { generateSecretKey, publicKeyOf, isValidSecretKey } from '../core/sig.ts';

// scrypt N=2^15, r=8: 32 MiB and ~0.1 s per unlock here, the usual interactive setting.
/** The shortest passphrase a new key file takes: scrypt slows guessing, it cannot save a one-letter passphrase. */
export const MIN_PASSPHRASE = 8;
const SCRYPT = { N: 1 << 15, r: 8, p: 1, maxmem: 64 * 1024 * 1024 };

interface PlainFile {
  version: 1;
  kind: 'dots-key';
  pubkey: string;
  secret: string;
}
interface EncryptedFile {
  version: 1;
  kind: 'dots-key';
  pubkey: string;
  crypto: { kdf: 'scrypt'; n: number; r: number; p: number; salt: string; cipher: 'aes-256-gcm'; iv: string; ciphertext: string; tag: string };
}

export { generateSecretKey, publicKeyOf, writeOwnerOnly };

export function writeKeyFile(path: string, secret: Uint8Array, passphrase?: string): void {
  const pubkey = toHex(publicKeyOf(secret));
  let file: PlainFile | EncryptedFile;
  if (passphrase === undefined) {
    file = { version: 1, kind: 'dots-key', pubkey, secret: toHex(secret) };
  } else {
    if ([...passphrase].length < MIN_PASSPHRASE) throw new UserError(`the passphrase must be at least ${MIN_PASSPHRASE} characters long`);
    const salt = randomBytes(16);
    const iv = randomBytes(12);
    const key = scryptSync(passphrase, salt, 32, SCRYPT);
    const c = createCipheriv('aes-256-gcm', key, iv);
    c.setAAD(Buffer.from(pubkey));
    const ciphertext = Buffer.concat([c.update(secret), c.final()]);
    file = {
      version: 1,
      kind: 'dots-key',
      pubkey,
      crypto: { kdf: 'scrypt', n: SCRYPT.N, r: SCRYPT.r, p: SCRYPT.p, salt: salt.toString('hex'), cipher: 'aes-256-gcm', iv: iv.toString('hex'), ciphertext: ciphertext.toString('hex'), tag: c.getAuthTag().toString('hex') },
    };
  }
  writeOwnerOnly(path, JSON.stringify(file, null, 2) + '\n');
}

export function isEncryptedKeyFile(path: string): boolean {
  return 'crypto' in (JSON.parse(readFileSync(path, 'utf8')) as object);
}

export function readKeyFile(path: string, passphrase?: string): Uint8Array {
  if (!existsSync(path)) throw new UserError(`no key file at ${path}`);
  // As ssh does with private keys: a key others may read (or replace) is not used until it is the owner's alone.
  const mode = statSync(path).mode & 0o777;
  if ((mode & 0o077) !== 0) throw new UserError(`${path} can be read or changed by other users (mode ${mode.toString(8).padStart(4, '0')}): run chmod 600 ${path}, then try again`);
  let f: PlainFile | EncryptedFile;
  try {
    f = JSON.parse(readFileSync(path, 'utf8')) as PlainFile | EncryptedFile;
  } catch {
    throw new UserError(`${path} is not a DOTS key file (not JSON)`);
  }
  if (f.kind !== 'dots-key' || f.version !== 1) throw new UserError(`${path} is not a DOTS key file`);
  let secret: Uint8Array;
  if ('secret' in f) {
    if (!isHex(f.secret, 32)) throw new UserError(`${path} holds a malformed key`);
    secret = fromHex(f.secret);
  } else {
    if (passphrase === undefined) throw new UserError(`${path} is encrypted: give its passphrase (--passphrase or DOTS_PASSPHRASE)`);
    const c = f.crypto;
    try {
      const key = scryptSync(passphrase, Buffer.from(c.salt, 'hex'), 32, { N: c.n, r: c.r, p: c.p, maxmem: SCRYPT.maxmem });
      const d = createDecipheriv('aes-256-gcm', key, Buffer.from(c.iv, 'hex'));
      d.setAAD(Buffer.from(f.pubkey));
      d.setAuthTag(Buffer.from(c.tag, 'hex'));
      secret = new Uint8Array(Buffer.concat([d.update(Buffer.from(c.ciphertext, 'hex')), d.final()]));
    } catch {
      throw new UserError(`wrong passphrase for ${path} (or the file was altered)`);
    }
  }
  if (!isValidSecretKey(secret) || toHex(publicKeyOf(secret)) !== f.pubkey) throw new UserError(`${path} holds a key that does not match its public key`);
  return secret;
}

/** Loads the key at `path`, creating a new unencrypted one (owner-only) if there is none. */
export function loadOrCreateKey(path: string): { secret: Uint8Array; created: boolean } {
  if (existsSync(path)) return { secret: readKeyFile(path), created: false };
  const secret = generateSecretKey();
  writeKeyFile(path, secret);
  return { secret, created: true };
}
