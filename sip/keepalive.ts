// The OPTIONS pings that verify registered contacts. The registrar decides when to ping and what
// an answer or a silence means; this sends one ping, a client transaction (RFC 3261 17.1.2), on
// the way a call to the contact would take, so a contact that answers is one calls reach.

import { randomUUID } from 'node:crypto';
import { headerKey, type SipHeader, type SipRequest } from './message.ts';
import { newBranch, newTag } from './serialize.ts';
import { viaFor, type SipTransport } from './transport.ts';
import type { TransactionLayer } from './transaction.ts';
import type { ContactBinding, Registrar } from './registrar.ts';
import type { NodeIdentity } from './identity.ts';
import { contactFlow } from './contact-flow.ts';

export class Keepalive {
  /** one random Call-ID per service and a counter after it: a UUID per ping would cost more */
  private readonly callId = randomUUID();
  private seq = 0;

  constructor(
    private readonly self: NodeIdentity,
    private readonly transport: SipTransport,
    private readonly tx: TransactionLayer,
    private readonly registrar: Registrar,
  ) {}

  /** Sends one OPTIONS to the contact, along its Path if it has one; true when anything answered. */
  async ping(b: ContactBinding): Promise<boolean> {
    const flow = b.path.length > 0 ? b.flow : await contactFlow(b, this.transport, this.registrar.keepalive.timeoutMs);
    if (flow === null) return false;
    const branch = newBranch();
    const headers: SipHeader[] = [
      hdr('Via', viaFor(flow, this.self.hostportFor(flow.proto), branch, true)),
      hdr('Max-Forwards', '70'),
    ];
    for (const p of b.path) headers.push(hdr('Route', p));
    headers.push(
      hdr('From', `<sip:keepalive@${this.self.domain}>;tag=${newTag()}`),
      hdr('To', `<${b.uriText}>`),
      hdr('Call-ID', `${this.callId}-${(this.seq = (this.seq + 1) >>> 0)}`),
      hdr('CSeq', '1 OPTIONS'),
      hdr('Content-Length', '0'),
    );
    const req: SipRequest = { kind: 'request', method: 'OPTIONS', uri: b.uriText, version: 'SIP/2.0', headers, body: Buffer.alloc(0) };
    const res = await this.tx.request(req, flow, branch, this.registrar.keepalive.timeoutMs);
    // any answer from the phone proves it is there, even a 4xx
    return res !== null;
  }
}

function hdr(name: string, value: string): SipHeader {
  return { name, key: headerKey(name), value };
}
