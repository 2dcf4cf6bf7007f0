// Whether a SIP server on loopback is up: an OPTIONS over UDP and its answer, for the tests and
// benchmarks that start one (Kamailio, SIPp) and must wait until it answers.
import { createSocket } from 'node:dgram';
import { randomBytes } from 'node:crypto';
import type { ChildProcess } from 'node:child_process';
import { waitFor } from './wait.ts';

/** Sends one OPTIONS to 127.0.0.1:port; the status of the answer, or null after `ms`. */
export function sipPing(port: number, ms: number): Promise<number | null> {
  return new Promise((resolve) => {
    const sock = createSocket('udp4');
    const done = (v: number | null): void => {
      clearTimeout(timer);
      sock.close();
      resolve(v);
    };
    const timer = setTimeout(() => done(null), ms);
    sock.on('message', (m) => done(Number(/^SIP\/2\.0 (\d{3})/.exec(m.toString('latin1'))?.[1] ?? 0)));
    sock.on('error', () => done(null));
    sock.bind(0, '127.0.0.1', () => {
      const tag = randomBytes(6).toString('hex');
      const text = [`OPTIONS sip:127.0.0.1:${port} SIP/2.0`, `Via: SIP/2.0/UDP 127.0.0.1:${sock.address().port};rport;branch=z9hG4bK${tag}`, 'Max-Forwards: 70', `From: <sip:probe@127.0.0.1>;tag=${tag}`, `To: <sip:127.0.0.1:${port}>`, `Call-ID: ${tag}`, 'CSeq: 1 OPTIONS', 'Content-Length: 0', '', ''].join('\r\n');
      sock.send(text, port, '127.0.0.1');
    });
  });
}

/** Waits until the server `child` runs answers OPTIONS on 127.0.0.1:port (any status); `log` says why it exited, if it does. */
export async function untilSipAnswers(what: string, child: ChildProcess, port: number, timeoutMs = 15_000, log: () => string = () => ''): Promise<void> {
  await waitFor(
    `${what} to answer OPTIONS`,
    async () => {
      if (child.exitCode !== null) throw new Error(`${what} exited (${child.exitCode}): ${log()}`);
      return (await sipPing(port, 300)) !== null ? true : undefined;
    },
    timeoutMs,
    100,
  );
}
