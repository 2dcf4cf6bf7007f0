// SIP over TLS (RFC 3261 26.2): how two nodes know each other on a TLS connection without any
// certificate authority.
//
// The node called: a node's announcement on the chain is signed with its node key and lists its
// SIP URIs; its TLS URI carries the SHA-256 of its certificate's public key (`;spki=HEX`, the
// SubjectPublicKeyInfo as DER), so another node that connects checks the key it is shown against
// the chain, and a certificate renewed with the same key (certbot --reuse-key) keeps its URI.
//
// The node calling: it shows no client certificate (phones have none, and a server that asks
// for one stalls some of them), it proves itself inside the connection. Its first request on a
// connection to another node carries `DOTS-Node-Proof: NODE-ID SIGNATURE`, its node key's
// signature (tag NODE_PROOF_TAG) over keying material both ends derive from this TLS session
// (RFC 5705, label NODE_PROOF_LABEL): valid on this connection only, so it cannot be replayed on
// another, and checked against the node key the chain has for NODE-ID.
import { X509Certificate, createHash } from 'node:crypto';
import { parseUri, uriParam } from './uri.ts';
import { getHeader, type SipMessage } from './message.ts';

/** the URI parameter of a node's TLS URI that names its certificate's key */
export const KEY_PARAM = 'spki';

/** The SHA-256 (hex) of a certificate's SubjectPublicKeyInfo. */
export function spkiFingerprint(cert: X509Certificate | string): string {
  const x = typeof cert === 'string' ? new X509Certificate(cert) : cert;
  return createHash('sha256').update(x.publicKey.export({ type: 'spki', format: 'der' })).digest('hex');
}

/** A node's TLS URI as it announces it: its host and TLS port, the transport, its key. */
export function tlsUri(hostport: string, key: string): string {
  return `sip:${hostport};transport=tls;${KEY_PARAM}=${key}`;
}

/** The certificate keys a node's SIP URIs name (lower-case hex). */
export function keysOf(sipUris: readonly string[]): string[] {
  const out: string[] = [];
  for (const s of sipUris) {
    try {
      const u = parseUri(s);
      if (u.kind !== 'sip') continue;
      const k = uriParam(u, KEY_PARAM);
      if (typeof k === 'string' && /^[0-9a-fA-F]{64}$/.test(k)) out.push(k.toLowerCase());
    } catch {
      // an announcement's URIs are the announcer's business: one that does not parse names no key
    }
  }
  return out;
}

/** Whether a message's SDP carries SDES keys (RFC 4568 a=crypto): whoever reads the signalling can decrypt the call's SRTP. */
export function hasSdesKeys(m: SipMessage): boolean {
  if (m.body.length === 0) return false;
  return /application\/sdp/i.test(getHeader(m, 'content-type') ?? '') && /^a=crypto:/m.test(m.body.toString('latin1'));
}

/** the header a node's proof travels in (removed by the node that reads it, never forwarded) */
export const NODE_PROOF_HEADER = 'DOTS-Node-Proof';
/** the RFC 5705 exporter label of the keying material a proof signs */
export const NODE_PROOF_LABEL = 'EXPORTER-dots-node-proof';
/** the domain of a proof's signature (core/sig signTagged) */
export const NODE_PROOF_TAG = 'dots/sip-node-proof';

/** A node's proof header value: its id and its signature, hex. */
export function nodeProofValue(nodeId: Uint8Array, sig: Uint8Array): string {
  return `${Buffer.from(nodeId).toString('hex')} ${Buffer.from(sig).toString('hex')}`;
}

/** A proof header value read back; null when it is not one (a 20-byte id and a 64-byte signature, hex). */
export function parseNodeProof(v: string): { nodeId: Uint8Array; sig: Uint8Array } | null {
  const m = /^([0-9a-fA-F]{40}) ([0-9a-fA-F]{128})$/.exec(v.trim());
  return m === null ? null : { nodeId: Buffer.from(m[1], 'hex'), sig: Buffer.from(m[2], 'hex') };
}
