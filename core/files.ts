// Files that hold secrets (keys, credentials, pending name claims): created owner-only and
// written atomically (temp file, fsync, rename), so a crash never leaves a half-written file and
// no other user can read it even for a moment.
import { openSync, writeSync, fsyncSync, closeSync, renameSync, chmodSync, unlinkSync } from 'node:fs';

export function writeOwnerOnly(path: string, data: string | Uint8Array): void {
  const tmp = `${path}.tmp-${process.pid}`;
  const fd = openSync(tmp, 'wx', 0o600);
  try {
    if (typeof data === 'string') writeSync(fd, data);
    else writeSync(fd, data);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  chmodSync(tmp, 0o600); // in case a umask or filesystem widened it
  try {
    renameSync(tmp, path);
  } catch (e) {
    unlinkSync(tmp);
    throw e;
  }
}
