// SIP parse benchmark: a typical REGISTER (UDP datagram) parsed in a loop.
// Run directly: npx tsx bench/sip-parse.ts [seconds]

import { pathToFileURL } from 'node:url';
import { parseMessage } from '../sip/message.ts';
import type { SipRequest } from '../sip/message.ts';
import { validateRequest } from '../sip/validate.ts';

const REGISTER = Buffer.from(
  'REGISTER sip:registrar.example.com SIP/2.0\r\n' +
    'Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK776asdhds;rport\r\n' +
    'Max-Forwards: 70\r\n' +
    'To: Bob <sip:bob@example.com>\r\n' +
    'From: Bob <sip:bob@example.com>;tag=456248\r\n' +
    'Call-ID: 843817637684230@998sdasdh09\r\n' +
    'CSeq: 1826 REGISTER\r\n' +
    'Contact: <sip:bob@192.0.2.10:5060;transport=udp>;expires=3600;+sip.instance="<urn:uuid:00000000-0000-1000-8000-000A95A0E128>";reg-id=1\r\n' +
    'User-Agent: DOTS-bench/1.0\r\n' +
    'Allow: INVITE, ACK, CANCEL, BYE, OPTIONS, MESSAGE, SUBSCRIBE, NOTIFY\r\n' +
    'Supported: path, gruu, outbound\r\n' +
    'Content-Length: 0\r\n' +
    '\r\n',
  'latin1',
);

function run(seconds: number, validate: boolean): number {
  const budget = BigInt(Math.max(1, Math.round(seconds * 1e9)));
  const opts = { stream: false };
  let n = 0;
  let sink = 0;
  const start = process.hrtime.bigint();
  let elapsed = 0n;
  for (;;) {
    for (let i = 0; i < 1024; i++) {
      const r = parseMessage(REGISTER, opts);
      if (!r.ok) throw r.error;
      if (validate && validateRequest(r.message as SipRequest) !== null) throw new Error('REGISTER did not validate');
      sink += r.message.headers.length;
    }
    n += 1024;
    elapsed = process.hrtime.bigint() - start;
    if (elapsed >= budget) break;
  }
  if (sink === 0) throw new Error('unreachable');
  return n / (Number(elapsed) / 1e9);
}

/**
 * Parses a typical REGISTER in a loop for about `seconds` (after a short
 * warm-up). messagesPerSecond: parseMessage only; withValidationPerSecond:
 * parseMessage + validateRequest (runs for another `seconds`).
 */
export function benchSipParse(seconds: number): { messagesPerSecond: number; withValidationPerSecond: number } {
  run(Math.min(0.3, seconds / 4), false); // warm-up (JIT)
  const messagesPerSecond = Math.round(run(seconds, false));
  run(Math.min(0.3, seconds / 4), true);
  const withValidationPerSecond = Math.round(run(seconds, true));
  return { messagesPerSecond, withValidationPerSecond };
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const secs = Number(process.argv[2] ?? 2);
  const r = benchSipParse(secs);
  console.log(`sip-parse: ${r.messagesPerSecond.toLocaleString('en-US')} REGISTER/s parsed, ${r.withValidationPerSecond.toLocaleString('en-US')}/s parsed+validated (${REGISTER.length} octets)`);
}
