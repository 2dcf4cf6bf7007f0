// The node's own TLS certificate (node/certificate.ts): DER written by hand, so its encodings are
// checked one by one, and what node:crypto and OpenSSL read back; made once per data directory
// and kept; a given certificate and key that do not belong together refused in one line.
import t from 'tap';
import { X509Certificate } from 'node:crypto';
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { TLS_CERT_FILE, TLS_KEY_FILE, derInteger, loadTlsIdentity, selfSignedCertificate } from '../node/certificate.ts';
import { UserError } from '../core/errors.ts';
import { tmpDir } from './util/tmp.ts';

t.test('DER integers: one form each, as X.690 asks', async (t) => {
  const hex = (b: number[]): string => derInteger(Buffer.from(b)).toString('hex');
  t.equal(hex([0x12]), '020112', 'a small number as is');
  t.equal(hex([0x80]), '02020080', 'a zero byte before a set top bit (else it would read as negative)');
  t.equal(hex([0x00, 0x12]), '020112', 'no leading zero before a clear top bit (OpenSSL: "illegal padding")');
  t.equal(hex([0x00, 0x00, 0x80]), '02020080', 'zeros dropped, then one put back before a set top bit');
  t.equal(hex([0x00]), '020100', 'zero is one zero byte');
});

t.test('a self-signed certificate reads back with its names, and many in a row all parse', async (t) => {
  const { cert, key } = selfSignedCertificate('n0123456789abcdef.dots', ['sip.example.org', '203.0.113.7', '2001:db8::1']);
  const x = new X509Certificate(cert);
  t.equal(x.subject, 'CN=n0123456789abcdef.dots', 'its common name');
  t.equal(x.subjectAltName, 'DNS:sip.example.org, IP Address:203.0.113.7, IP Address:2001:DB8:0:0:0:0:0:1', 'its DNS names and IP addresses');
  t.ok(x.verify(x.publicKey), 'signed by its own key');
  t.ok(new Date(x.validTo).getTime() - Date.now() > 9 * 365 * 86_400_000, 'valid for about ten years');
  t.match(key, /^-----BEGIN PRIVATE KEY-----/, 'its key as PKCS#8 PEM');
  let bad = 0;
  for (let i = 0; i < 300; i++) {
    try {
      new X509Certificate(selfSignedCertificate(`n${i}`, ['localhost']).cert);
    } catch {
      bad++;
    }
  }
  t.equal(bad, 0, 'every one of 300 parses (random serials of every shape)');
});

t.test('a data directory makes its certificate once and keeps it; a given pair must belong together', async (t) => {
  const dir = tmpDir(t);
  const first = loadTlsIdentity(dir, { hosts: ['localhost'], commonName: 'a.test' });
  t.equal(first.own, true, 'made by the node at first start');
  t.equal((statSync(join(dir, TLS_KEY_FILE)).mode & 0o777).toString(8), '600', 'the key file is owner-only');
  const again = loadTlsIdentity(dir, { hosts: ['localhost'], commonName: 'a.test' });
  t.equal(again.cert, first.cert, 'the same certificate at the next start');
  t.equal(readFileSync(join(dir, TLS_CERT_FILE), 'utf8'), first.cert, 'kept in DATADIR/tls.crt');
  const other = selfSignedCertificate('other', ['localhost']);
  writeFileSync(join(dir, 'c.pem'), first.cert);
  writeFileSync(join(dir, 'k.pem'), other.key);
  t.throws(() => loadTlsIdentity(dir, { certFile: join(dir, 'c.pem'), keyFile: join(dir, 'k.pem'), hosts: [], commonName: 'x' }), new UserError(`--tls-cert ${join(dir, 'c.pem')} and --tls-key ${join(dir, 'k.pem')}: the key does not belong to the certificate`), 'a key of another certificate is refused in one line');
  writeFileSync(join(dir, 'k.pem'), first.key);
  const given = loadTlsIdentity(dir, { certFile: join(dir, 'c.pem'), keyFile: join(dir, 'k.pem'), hosts: [], commonName: 'x' });
  t.equal(given.own, false, 'a matching pair is taken as given');
  writeFileSync(join(dir, 'c.pem'), 'not a certificate');
  t.throws(() => loadTlsIdentity(dir, { certFile: join(dir, 'c.pem'), keyFile: join(dir, 'k.pem'), hosts: [], commonName: 'x' }), { message: /the certificate is not a PEM X\.509 certificate/ }, 'so is a file that is no certificate');
});
