// The registrar's contacts on disk (DATADIR/registrations.json), so a node that restarts, or
// crashes, gets its phones back: restored contacts are pinged before they count, expired ones are
// dropped (Registrar.restore). A contact coming or going is written within a second, refreshes
// once a minute. The snapshot is taken on the event loop; the write and fsync go to the thread
// pool, one at a time (tens of milliseconds for 10,000 phones that would otherwise hold up SIP).
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { writeOwnerOnly, writeOwnerOnlyAsync } from '../core/files.ts';
import type { Logger } from '../core/log.ts';
import type { Registrar, SavedContact } from '../sip/registrar.ts';

export const REGISTRATIONS_FILE = 'registrations.json';

/** How often the file is looked at, and how long refreshes alone may wait for a write. */
const CHECK_MS = 1000;
const REFRESH_WRITE_MS = 60_000;

export class RegistrationsFile {
  readonly path: string;
  private savedChanges = 0;
  private savedRegisters = 0;
  private lastSave = 0;
  private writing: Promise<void> | null = null;
  private writeAgain = false;
  private timer: NodeJS.Timeout | null = null;

  constructor(
    datadir: string,
    private readonly registrar: Registrar,
    private readonly log: Logger,
  ) {
    this.path = join(datadir, REGISTRATIONS_FILE);
  }

  /** Brings back what the file holds (an unreadable file is reported and ignored), then saves on changes. */
  start(): void {
    if (existsSync(this.path)) {
      try {
        const saved = JSON.parse(readFileSync(this.path, 'utf8')) as { version: number; contacts: SavedContact[] };
        const n = this.registrar.restore(saved.contacts ?? []);
        if (n > 0) this.log.info(`sip: ${n} registration(s) restored, verifying them`);
      } catch (e) {
        this.log.warn(`sip: ignoring unreadable ${this.path}: ${(e as Error).message}`);
      }
    }
    // the file holds what was just restored
    this.savedChanges = this.registrar.stats.changes;
    this.savedRegisters = this.registrar.stats.registers;
    this.lastSave = Date.now();
    this.timer = setInterval(() => {
      const s = this.registrar.stats;
      if (s.changes !== this.savedChanges || (s.registers !== this.savedRegisters && Date.now() - this.lastSave >= REFRESH_WRITE_MS)) this.save();
    }, CHECK_MS).unref();
  }

  /** Waits for a write under way, then writes the final state synchronously. */
  async stop(): Promise<void> {
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
    this.writeAgain = false;
    await this.writing;
    try {
      writeOwnerOnly(this.path, this.text());
    } catch (e) {
      this.log.warn(`sip: cannot save registrations: ${(e as Error).message}`);
    }
  }

  private text(): string {
    this.savedChanges = this.registrar.stats.changes;
    this.savedRegisters = this.registrar.stats.registers;
    this.lastSave = Date.now();
    return JSON.stringify({ version: 1, contacts: this.registrar.snapshot() }) + '\n';
  }

  private save(): void {
    if (this.writing !== null) {
      this.writeAgain = true;
      return;
    }
    this.writing = writeOwnerOnlyAsync(this.path, this.text())
      .catch((e: unknown) => this.log.warn(`sip: cannot save registrations: ${(e as Error).message}`))
      .finally(() => {
        this.writing = null;
        if (this.writeAgain) {
          this.writeAgain = false;
          this.save();
        }
      });
  }
}
