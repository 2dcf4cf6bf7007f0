// The registrar's contacts on disk (DATADIR/registrations.json), so a node that restarts, or
// crashes, gets its phones back: restored contacts are pinged before they count, expired ones are
// dropped (Registrar.restore). A contact coming or going is written within a second (or ten
// times the last save's length, when that is longer), refreshes alone once a minute. The file is
// made a slice of contacts per turn of the event loop and written as it is made, so SIP messages
// are read between slices: one snapshot and one string held the loop 14-32 ms at 10,000 phones
// and 252-324 ms at 100,000 (`dots bench registrations`). The write and fsync go to the thread
// pool, one save at a time.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { writeOwnerOnly, writeOwnerOnlyParts } from '../core/files.ts';
import type { Logger } from '../core/log.ts';
import type { Registrar, SavedContact } from '../sip/registrar.ts';

export const REGISTRATIONS_FILE = 'registrations.json';

/** How often the file is looked at, and how long refreshes alone may wait for a write. */
const CHECK_MS = 1000;
const REFRESH_WRITE_MS = 60_000;
/** Contacts snapshotted and made JSON per turn of the event loop: about 3 ms at 100,000 (bench registrations). */
const SLICE_CONTACTS = 1000;
/**
 * A save starts no sooner than this many times the last one's length after the last one
 * started, so saving takes at most about a tenth of the node's time: at 100,000 contacts a save
 * takes about half a second, and phones coming and going would otherwise have it run without end.
 */
const SAVE_SPACING = 10;

export interface RegistrationsFileOptions {
  /** contacts per turn of the event loop while a save is made */
  sliceContacts?: number;
}

/** The file is these around the saved contacts' JSON, without its brackets. */
const FILE_HEAD = '{"version":1,"contacts":[';
const FILE_TAIL = ']}\n';

export class RegistrationsFile {
  readonly path: string;
  private savedChanges = 0;
  private savedRegisters = 0;
  private lastSave = 0;
  /** how long the last save took, ms (to its renamed file) */
  lastSaveMs = 0;
  private writing: Promise<void> | null = null;
  private writeAgain = false;
  private timer: NodeJS.Timeout | null = null;
  private readonly slice: number;

  constructor(
    datadir: string,
    private readonly registrar: Registrar,
    private readonly log: Logger,
    o: RegistrationsFileOptions = {},
  ) {
    this.path = join(datadir, REGISTRATIONS_FILE);
    this.slice = o.sliceContacts ?? SLICE_CONTACTS;
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
      if (Date.now() - this.lastSave < SAVE_SPACING * this.lastSaveMs) return;
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
      writeOwnerOnly(this.path, [...this.parts(Infinity)].join(''));
    } catch (e) {
      this.log.warn(`sip: cannot save registrations: ${(e as Error).message}`);
    }
  }

  /** Saves now (after a save under way, if any); resolves once the file holds the registrations of this moment or later. */
  async saveNow(): Promise<void> {
    this.save();
    while (this.writing !== null) await this.writing;
  }

  /** What the file will hold is counted from here: a change after this makes the next check save again. */
  private marked(): void {
    this.savedChanges = this.registrar.stats.changes;
    this.savedRegisters = this.registrar.stats.registers;
    this.lastSave = Date.now();
  }

  /**
   * The file's text in parts, `slice` contacts or so each, made as the file takes them: the
   * event loop turns between slices, and the whole text is never one string.
   */
  private *parts(slice: number): Generator<string, void, undefined> {
    this.marked();
    yield FILE_HEAD;
    let sep = '';
    for (const contacts of this.registrar.snapshotSlices(slice)) {
      yield sep + JSON.stringify(contacts).slice(1, -1);
      sep = ',';
    }
    yield FILE_TAIL;
  }

  private save(): void {
    if (this.writing !== null) {
      this.writeAgain = true;
      return;
    }
    const started = Date.now();
    this.writing = writeOwnerOnlyParts(this.path, this.parts(this.slice))
      .then(() => {
        this.lastSaveMs = Date.now() - started;
      })
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

