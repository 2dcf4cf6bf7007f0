// Free ports on 127.0.0.1, for processes that must be told a port (SIPp, Kamailio, a phone) rather
// than pick one themselves. The port is free when the answer is given; whoever binds it next wins.
import { createSocket } from 'node:dgram';
import { createServer } from 'node:net';

/** A UDP port no socket on 127.0.0.1 holds. */
export function freeUdpPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createSocket('udp4');
    s.once('error', reject);
    s.bind(0, '127.0.0.1', () => {
      const p = s.address().port;
      s.close(() => resolve(p));
    });
  });
}

/** A TCP port nothing on 127.0.0.1 listens on. */
export function freeTcpPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const p = (s.address() as { port: number }).port;
      s.close(() => resolve(p));
    });
  });
}

/** Whether a UDP socket can bind `port` on 127.0.0.1 now. */
function udpFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const u = createSocket('udp4');
    u.once('error', () => resolve(false));
    u.bind(port, '127.0.0.1', () => u.close(() => resolve(true)));
  });
}

/** A port free for both TCP and UDP on 127.0.0.1 (a SIP server listens on both). */
export async function freePort(): Promise<number> {
  for (;;) {
    const port = await freeTcpPort();
    if (await udpFree(port)) return port;
  }
}
