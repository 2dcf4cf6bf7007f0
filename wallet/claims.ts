// Name commitments this wallet made and has not revealed yet: the salt of each, which the reveal
// needs, kept beside the wallet key (FILE.claims.json, owner-only, written atomically) so a claim
// interrupted between commit and reveal can be finished later.
import { existsSync, readFileSync } from 'node:fs';
import { writeOwnerOnly } from '../core/files.ts';
import { UserError } from '../core/errors.ts';

export interface PendingClaim {
  /** hex of the 32-byte salt */
  salt: string;
  /** id of the commitment record */
  commit: string;
}

export class ClaimsFile {
  readonly path: string;

  constructor(walletFile: string) {
    this.path = `${walletFile}.claims.json`;
  }

  load(): Record<string, PendingClaim> {
    if (!existsSync(this.path)) return {};
    try {
      return JSON.parse(readFileSync(this.path, 'utf8')) as Record<string, PendingClaim>;
    } catch {
      throw new UserError(`${this.path} is not a claims file (not JSON); move it away to start the claim over`);
    }
  }

  save(claims: Record<string, PendingClaim>): void {
    writeOwnerOnly(this.path, JSON.stringify(claims, null, 2) + '\n');
  }
}
