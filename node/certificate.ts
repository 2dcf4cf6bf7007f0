// The node's TLS certificate: its own, made at first start (a self-signed X.509 v3 certificate
// for an ECDSA P-256 key, DATADIR/tls.crt and DATADIR/tls.key), or one it is given
// (--tls-cert/--tls-key, a Let's Encrypt certificate unchanged). Other nodes do not check it
// against any certificate authority: the node's announcement on the chain, signed with its
// node key, names the certificate's public key (see sip/tls.ts), and that is what they check.
//
// The certificate is written here in DER by hand (RFC 5280), a few dozen lines, rather than with
// a library: node:crypto makes the key and the signature, and X509Certificate reads the result
// back as a check.
import { X509Certificate, createPrivateKey, generateKeyPairSync, randomBytes, sign } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { isIP } from 'node:net';
import { UserError } from '../core/errors.ts';
import { writeOwnerOnly } from '../core/files.ts';

export const TLS_CERT_FILE = 'tls.crt';
export const TLS_KEY_FILE = 'tls.key';

export interface TlsIdentity {
  /** PEM, the certificate (a chain: the node's first) */
  cert: string;
  /** PEM, its private key */
  key: string;
  /** made by the node itself (true), or given with --tls-cert/--tls-key */
  own: boolean;
}

// --- DER (X.690), only what a certificate needs
function len(n: number): Buffer {
  if (n < 0x80) return Buffer.from([n]);
  const bytes: number[] = [];
  for (let v = n; v > 0; v = Math.floor(v / 256)) bytes.unshift(v & 0xff);
  return Buffer.from([0x80 | bytes.length, ...bytes]);
}
const tlv = (tag: number, body: Buffer): Buffer => Buffer.concat([Buffer.from([tag]), len(body.length), body]);
const seq = (...parts: Buffer[]): Buffer => tlv(0x30, Buffer.concat(parts));
const set = (...parts: Buffer[]): Buffer => tlv(0x31, Buffer.concat(parts));

function oid(dotted: string): Buffer {
  const [a, b, ...rest] = dotted.split('.').map(Number);
  const out = [40 * a + b];
  for (const v of rest) {
    const groups: number[] = [];
    for (let x = v; ; x = Math.floor(x / 128)) {
      groups.unshift(x & 0x7f);
      if (x < 128) break;
    }
    for (let i = 0; i < groups.length - 1; i++) groups[i] |= 0x80;
    out.push(...groups);
  }
  return tlv(0x06, Buffer.from(out));
}

/** A positive INTEGER from big-endian bytes, in its one DER form: no leading zero bytes but one before a set top bit. */
export function derInteger(bytes: Buffer): Buffer {
  let i = 0;
  while (i < bytes.length - 1 && bytes[i] === 0) i++;
  const v = bytes.subarray(i);
  return tlv(0x02, v[0] >= 0x80 ? Buffer.concat([Buffer.from([0]), v]) : v);
}

/** UTCTime before 2050, GeneralizedTime from then on (RFC 5280 4.1.2.5). */
function time(d: Date): Buffer {
  const iso = d.toISOString().replace(/[-:T]/g, '').slice(0, 14) + 'Z'; // YYYYMMDDHHMMSSZ
  return d.getUTCFullYear() < 2050 ? tlv(0x17, Buffer.from(iso.slice(2), 'ascii')) : tlv(0x18, Buffer.from(iso, 'ascii'));
}

const name = (cn: string): Buffer => seq(set(seq(oid('2.5.4.3'), tlv(0x0c, Buffer.from(cn, 'utf8')))));

/** subjectAltName: DNS names and IP addresses (RFC 5280 4.2.1.6) */
function altNames(hosts: string[]): Buffer {
  const entries = hosts.map((h) => {
    const v = isIP(h);
    if (v === 4) return tlv(0x87, Buffer.from(h.split('.').map(Number)));
    if (v === 6) return tlv(0x87, ipv6Bytes(h));
    return tlv(0x82, Buffer.from(h, 'ascii'));
  });
  return seq(oid('2.5.29.17'), tlv(0x04, seq(...entries)));
}

function ipv6Bytes(h: string): Buffer {
  const [head, tail] = h.split('::');
  const parts = (s: string | undefined): number[] => (s === undefined || s === '' ? [] : s.split(':').map((x) => parseInt(x, 16)));
  const a = parts(head);
  const b = parts(tail);
  const groups = tail === undefined ? a : [...a, ...new Array<number>(8 - a.length - b.length).fill(0), ...b];
  const out = Buffer.alloc(16);
  groups.forEach((g, i) => out.writeUInt16BE(g, 2 * i));
  return out;
}

/**
 * A self-signed certificate for a new ECDSA P-256 key, valid from a day ago for ten years,
 * naming `hosts` (DNS names and IP addresses) as its subject's alternative names.
 */
export function selfSignedCertificate(commonName: string, hosts: string[], now = new Date()): { cert: string; key: string } {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const ecdsaSha256 = seq(oid('1.2.840.10045.4.3.2'));
  const serial = randomBytes(16);
  serial[0] &= 0x7f;
  const tbs = seq(
    tlv(0xa0, derInteger(Buffer.from([2]))), // v3
    derInteger(serial),
    ecdsaSha256,
    name(commonName),
    seq(time(new Date(now.getTime() - 86_400_000)), time(new Date(now.getTime() + 10 * 365 * 86_400_000))),
    name(commonName),
    publicKey.export({ type: 'spki', format: 'der' }),
    tlv(0xa3, seq(altNames(hosts))),
  );
  const signature = sign('sha256', tbs, privateKey);
  const der = seq(tbs, ecdsaSha256, tlv(0x03, Buffer.concat([Buffer.from([0]), signature])));
  const pem = `-----BEGIN CERTIFICATE-----\n${der.toString('base64').replace(/.{64}/g, '$&\n').replace(/\n?$/, '\n')}-----END CERTIFICATE-----\n`;
  return { cert: pem, key: privateKey.export({ type: 'pkcs8', format: 'pem' }) as string };
}

/**
 * The node's TLS identity: the given certificate and key (both read and checked: a pair that does
 * not belong together is refused in one line), else DATADIR's own, made at first start.
 */
export function loadTlsIdentity(datadir: string, o: { certFile?: string; keyFile?: string; hosts: string[]; commonName: string }): TlsIdentity {
  if (o.certFile !== undefined || o.keyFile !== undefined) {
    if (o.certFile === undefined || o.keyFile === undefined) throw new UserError('--tls-cert and --tls-key go together: give both, or neither (the node then makes its own)');
    const cert = readText(o.certFile, '--tls-cert');
    const key = readText(o.keyFile, '--tls-key');
    check(cert, key, `--tls-cert ${o.certFile} and --tls-key ${o.keyFile}`);
    return { cert, key, own: false };
  }
  const certPath = join(datadir, TLS_CERT_FILE);
  const keyPath = join(datadir, TLS_KEY_FILE);
  let cert: string | undefined;
  let key: string | undefined;
  try {
    cert = readFileSync(certPath, 'utf8');
    key = readFileSync(keyPath, 'utf8');
  } catch {
    cert = undefined;
  }
  if (cert === undefined || key === undefined) {
    const made = selfSignedCertificate(o.commonName, o.hosts);
    // the key first: a certificate on disk always has its key beside it
    writeOwnerOnly(keyPath, made.key);
    writeOwnerOnly(certPath, made.cert);
    return { ...made, own: true };
  }
  check(cert, key, `${certPath} and ${keyPath}`);
  return { cert, key, own: true };
}

function readText(file: string, flag: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (e) {
    throw new UserError(`${flag}: cannot read ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
}

function check(cert: string, key: string, what: string): void {
  let x: X509Certificate;
  try {
    x = new X509Certificate(cert);
  } catch {
    throw new UserError(`${what}: the certificate is not a PEM X.509 certificate`);
  }
  let ok = false;
  try {
    ok = x.checkPrivateKey(createPrivateKey(key));
  } catch {
    throw new UserError(`${what}: the key is not a PEM private key`);
  }
  if (!ok) throw new UserError(`${what}: the key does not belong to the certificate`);
}
