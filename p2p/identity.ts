// The node's persistent libp2p identity (an Ed25519 key, so its peer id stays the same across
// restarts and bootstrap multiaddrs keep working). Stored as libp2p's protobuf encoding in an
// owner-only file, written atomically; a file readable by others is tightened, not trusted less,
// because the key only names the peer and signs nothing of value.
import { chmodSync, existsSync, readFileSync, statSync } from 'node:fs';
import { writeOwnerOnly } from '../core/files.ts';
import type { PrivateKey } from '@libp2p/interface';
import { UserError } from '../core/errors.ts';
import './polyfill.ts';

export const IDENTITY_FILE = 'p2p.key';

export interface Identity {
  privateKey: PrivateKey;
  created: boolean;
}

/** Loads the peer key at `path`, creating it (mode 0600) on first start. */
export async function loadOrCreateIdentity(path: string): Promise<Identity> {
  const { generateKeyPair, privateKeyFromProtobuf, privateKeyToProtobuf } = await import('@libp2p/crypto/keys');
  if (existsSync(path)) {
    let key: PrivateKey;
    try {
      key = privateKeyFromProtobuf(new Uint8Array(readFileSync(path)));
    } catch (e) {
      throw new UserError(`peer key file ${path} is damaged (${(e as Error).message}); move it away to get a new peer id`);
    }
    if ((statSync(path).mode & 0o077) !== 0) chmodSync(path, 0o600);
    return { privateKey: key, created: false };
  }
  const key = await generateKeyPair('Ed25519');
  try {
    writeOwnerOnly(path, privateKeyToProtobuf(key));
  } catch (e) {
    throw new UserError(`cannot write peer key file ${path}: ${(e as Error).message}`);
  }
  return { privateKey: key, created: true };
}
