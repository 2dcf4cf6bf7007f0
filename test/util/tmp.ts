// Temporary directories that are removed when the test (or anything with a teardown) ends.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** A test (or anything) that runs clean-ups at its end. */
export type Teardown = { teardown(fn: () => void | Promise<void>): void };

/** A fresh directory under the system's temporary directory, removed at `t`'s teardown. */
export function tmpDir(t: Teardown, prefix = 'dots-test-'): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  t.teardown(() => rmSync(dir, { recursive: true, force: true, maxRetries: 5 }));
  return dir;
}
