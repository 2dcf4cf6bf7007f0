// A way back (a flow, a Via port, header lines, and bytes to send) packed into one Buffer, for
// what a finished transaction keeps off the JavaScript heap in a DoneStore (done-store.ts): an
// answered INVITE's way upstream for 64*T1 (RFC 6026), a failed INVITE's ACK for Timer D. Kept
// as objects, they were most of what each call left alive past a young-generation collection.
import { headerKey, type SipHeader } from './message.ts';
import type { Flow, Proto } from './transport.ts';

const PROTOS: readonly Proto[] = ['udp', 'tcp', 'tls', 'ws', 'wss'];
const EMPTY = Buffer.alloc(0);

export interface Way {
  flow: Flow;
  /** the Via's sent-by port (sip/transaction.ts sendResponse), or null */
  viaPort: number | null;
  headers: SipHeader[];
  /** bytes that go with it (an ACK), or empty */
  tail: Buffer;
}

/** Packs a way: 1 byte transport, 2 port, 6 connection id, 4 Via port, the address, the headers, then `tail`. */
export function packWay(flow: Flow, viaPort: number | null, headers: readonly SipHeader[] = [], tail: Buffer = EMPTY): Buffer {
  let size = 14 + Buffer.byteLength(flow.address, 'latin1') + 2 + tail.length;
  for (const h of headers) size += 6 + Buffer.byteLength(h.name) + Buffer.byteLength(h.value);
  const b = Buffer.allocUnsafe(size);
  b[0] = PROTOS.indexOf(flow.proto);
  b.writeUInt16BE(flow.port, 1);
  b.writeUIntBE(flow.conn, 3, 6);
  b.writeInt32BE(viaPort ?? -1, 9);
  b[13] = b.write(flow.address, 14, 'latin1');
  let at = 14 + b[13];
  b.writeUInt16BE(headers.length, at);
  at += 2;
  for (const h of headers) {
    const n = b.write(h.name, at + 2);
    b.writeUInt16BE(n, at);
    at += 2 + n;
    const v = b.write(h.value, at + 4);
    b.writeUInt32BE(v, at);
    at += 4 + v;
  }
  tail.copy(b, at);
  return b;
}

/** A packed way read back (the tail a view of `b`). */
export function unpackWay(b: Buffer): Way {
  const address = b.toString('latin1', 14, 14 + b[13]);
  const flow: Flow = { proto: PROTOS[b[0]], address, port: b.readUInt16BE(1), conn: b.readUIntBE(3, 6) };
  const vp = b.readInt32BE(9);
  let at = 14 + b[13];
  const count = b.readUInt16BE(at);
  at += 2;
  const headers: SipHeader[] = [];
  for (let i = 0; i < count; i++) {
    const n = b.readUInt16BE(at);
    const name = b.toString('utf8', at + 2, at + 2 + n);
    at += 2 + n;
    const v = b.readUInt32BE(at);
    const value = b.toString('utf8', at + 4, at + 4 + v);
    at += 4 + v;
    headers.push({ name, key: headerKey(name), value });
  }
  return { flow, viaPort: vp < 0 ? null : vp, headers, tail: b.subarray(at) };
}
