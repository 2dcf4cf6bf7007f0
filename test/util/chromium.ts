// Debian's Chromium (/usr/bin/chromium) through playwright-core, headless, in a profile of its own
// removed at teardown: the explorer's browser test and the browser phone (test/phones.ts) use it.
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type BrowserContext } from 'playwright-core';
import type { Teardown } from './tmp.ts';

export const CHROMIUM = '/usr/bin/chromium';
const ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];
const MEDIA_ARGS = [
  // a fake microphone (a beep), granted without asking
  '--use-fake-ui-for-media-stream', '--use-fake-device-for-media-stream', '--autoplay-policy=no-user-gesture-required',
  // host candidates with their real addresses (not mDNS names), loopback among them
  '--disable-features=WebRtcHideLocalIpsWithMdns', '--allow-loopback-in-peer-connection',
];

/** Chromium missing is a failure, not a skip (CI's .ci/run installs it): true, with the failure said, when it is. */
export function chromiumMissing(t: { fail(message: string): unknown }): boolean {
  if (existsSync(CHROMIUM)) return false;
  t.fail(`${CHROMIUM} not found: install Debian's chromium (apt-get install -y chromium); .ci/run does this`);
  return true;
}

/**
 * A Chromium closed at `t`'s teardown. `media`: a fake microphone and WebRTC host candidates
 * on loopback (for calls); `acceptCertificate`: take a self-signed certificate, as a user who
 * clicks through the warning once does.
 */
export async function launchChromium(t: Teardown, o: { name?: string; media?: boolean; acceptCertificate?: boolean; viewport?: { width: number; height: number } } = {}): Promise<BrowserContext> {
  const profile = mkdtempSync(join(tmpdir(), `dots-chromium-${o.name ?? 'page'}-`));
  const ctx = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    args: o.media === true ? [...ARGS, ...MEDIA_ARGS] : ARGS,
    timeout: 20_000,
    ignoreHTTPSErrors: o.acceptCertificate === true,
    ...(o.viewport === undefined ? {} : { viewport: o.viewport }),
  });
  t.teardown(async () => {
    await ctx.close();
    rmSync(profile, { recursive: true, force: true });
  });
  return ctx;
}
