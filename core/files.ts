// Files that hold secrets (keys, credentials, pending name claims): created owner-only and
// written atomically (temp file, fsync, rename), so a crash never leaves a half-written file and
// no other user can read it even for a moment.
import { openSync, writeSync, fsyncSync, closeSync, renameSync, chmodSync, unlinkSync, readFileSync, rmSync, statSync } from 'node:fs';
import { open, rename, rm } from 'node:fs/promises';
import { UserError } from './errors.ts';

let tmpSeq = 0;

export function writeOwnerOnly(path: string, data: string | Uint8Array): void {
  const tmp = `${path}.tmp-${process.pid}-${tmpSeq++}`;
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

/**
 * writeOwnerOnly off the event loop (the write and fsync run on libuv's thread pool): for files
 * a busy node rewrites while it serves SIP, where a synchronous fsync would stall every message
 * behind it. Two writes of one file must not overlap (the caller serialises them).
 */
export async function writeOwnerOnlyAsync(path: string, data: string): Promise<void> {
  await writeOwnerOnlyParts(path, [data]);
}

/**
 * The same, written a part at a time as `parts` makes them: a large file is never one string or
 * buffer, and the event loop turns between parts (encoding 30 MB held it tens of milliseconds).
 */
export async function writeOwnerOnlyParts(path: string, parts: Iterable<string> | AsyncIterable<string>): Promise<void> {
  const tmp = `${path}.tmp-${process.pid}-${tmpSeq++}`;
  const fh = await open(tmp, 'wx', 0o600);
  try {
    for await (const part of parts) await fh.write(part);
    await fh.sync();
    await fh.chmod(0o600);
  } finally {
    await fh.close();
  }
  try {
    await rename(tmp, path);
  } catch (e) {
    await rm(tmp, { force: true });
    throw e;
  }
}

/**
 * Runs `fn` holding an exclusive lock file next to `path` (`PATH.lock`, created with O_EXCL), so
 * two processes doing read-modify-write on one file (`dots user add` twice at once) cannot lose
 * each other's change. A lock left by a process that died is taken over; waiting is bounded.
 */
export function withFileLock<T>(path: string, fn: () => T, timeoutMs = 10_000): T {
  const lock = `${path}.lock`;
  const deadline = Date.now() + timeoutMs;
  const pause = new Int32Array(new SharedArrayBuffer(4));
  for (;;) {
    try {
      const fd = openSync(lock, 'wx', 0o600);
      writeSync(fd, String(process.pid));
      closeSync(fd);
      break;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      if (lockIsStale(lock)) {
        rmSync(lock, { force: true });
        continue;
      }
      if (Date.now() > deadline) throw new UserError(`${path} is locked by another process (remove ${lock} if no dots command is running)`);
      Atomics.wait(pause, 0, 0, 20);
    }
  }
  try {
    return fn();
  } finally {
    rmSync(lock, { force: true });
  }
}

/** A lock whose process is gone (or unreadable after a few seconds) is stale. */
function lockIsStale(lock: string): boolean {
  let pid = NaN;
  let age = 0;
  try {
    pid = Number(readFileSync(lock, 'utf8').trim());
    age = Date.now() - statSync(lock).mtimeMs;
  } catch {
    return false; // gone already, or being written: try again
  }
  if (!Number.isSafeInteger(pid) || pid <= 0) return age > 5000;
  try {
    process.kill(pid, 0);
    return false;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'ESRCH';
  }
}
