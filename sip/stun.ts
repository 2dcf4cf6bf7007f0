// The STUN binding responder that RFC 5626 (SIP outbound) keepalives need on the SIP UDP port:
// a phone using outbound over UDP sends STUN binding requests to the registrar and learns its
// public address from XOR-MAPPED-ADDRESS (RFC 5389 15.2). Nothing else of STUN is served.

import { isIP } from 'node:net';

const MAGIC = 0x2112a442;
const BINDING_REQUEST = 0x0001;
const BINDING_SUCCESS = 0x0101;
const XOR_MAPPED_ADDRESS = 0x0020;

/** A STUN binding request: type 0x0001, length a multiple of 4 matching the datagram, magic cookie. */
export function isStunRequest(b: Buffer): boolean {
  return b.length >= 20 && b.readUInt16BE(0) === BINDING_REQUEST && b.readUInt32BE(4) === MAGIC && b.readUInt16BE(2) + 20 === b.length && (b.readUInt16BE(2) & 3) === 0;
}

/** The success response carrying the requester's address as XOR-MAPPED-ADDRESS. */
export function stunBindingResponse(req: Buffer, address: string, port: number): Buffer {
  const v6 = isIP(address) === 6;
  const alen = v6 ? 16 : 4;
  const out = Buffer.alloc(20 + 4 + 4 + alen);
  out.writeUInt16BE(BINDING_SUCCESS, 0);
  out.writeUInt16BE(4 + 4 + alen, 2);
  req.copy(out, 4, 4, 20); // magic cookie and transaction id
  out.writeUInt16BE(XOR_MAPPED_ADDRESS, 20);
  out.writeUInt16BE(4 + alen, 22);
  out.writeUInt8(0, 24);
  out.writeUInt8(v6 ? 2 : 1, 25);
  out.writeUInt16BE(port ^ (MAGIC >>> 16), 26);
  if (!v6) {
    const parts = address.split('.').map(Number);
    for (let i = 0; i < 4; i++) out[28 + i] = parts[i] ^ out[4 + i];
  } else {
    const raw = ipv6Bytes(address);
    for (let i = 0; i < 16; i++) out[28 + i] = raw[i] ^ out[4 + i]; // cookie + transaction id
  }
  return out;
}

function ipv6Bytes(a: string): Uint8Array {
  const out = new Uint8Array(16);
  const [head, tail] = a.includes('::') ? a.split('::') : [a, ''];
  const h = head === '' ? [] : head.split(':');
  const t = tail === '' ? [] : tail.split(':');
  const words = [...h, ...new Array<string>(8 - h.length - t.length).fill('0'), ...t];
  for (let i = 0; i < 8; i++) {
    const w = parseInt(words[i] ?? '0', 16) || 0;
    out[2 * i] = w >> 8;
    out[2 * i + 1] = w & 0xff;
  }
  return out;
}
