// state-store.ts: the service's files in STATE_DIR. It reads them at start-up and replaces them
// atomically: a temporary file in the same directory, fsync, rename over the old one, fsync of the directory.
// It never deletes or overwrites a file it could not read: that one is renamed aside. docs/history.md.

import {
  closeSync,
  existsSync,
  fsyncSync,
  mkdirSync,
  openSync,
  readFileSync,
  renameSync,
  unlinkSync,
  writeSync,
} from 'node:fs';
import { type FileHandle, open, rename, unlink } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import type { Logger } from './log.ts';

// A save writes whenever this much is encoded; its buffer has room for a whole check's piece beyond it.
const WRITE_CHUNK_BYTES = 64 * 1024;
const WRITE_BUFFER_BYTES = 256 * 1024;
const encoder = new TextEncoder();
// Bounds the search for a free `.corrupt-<time>-<n>` name; a directory with that many is not sane.
const MAX_ASIDE_SUFFIX = 1000;

/** One directory of state files; `open()` proves it usable. */
export class StateStore {
  /** Absolute path of the directory. */
  readonly dir: string;
  // The tail of each name's chain of saves: a save starts when the previous one of that name is done.
  readonly #saves = new Map<string, Promise<void>>();

  private constructor(dir: string) {
    this.dir = dir;
  }

  /**
   * Creates `dir` as `mkdir -p` does and proves it writable by writing, fsyncing, renaming and
   * removing a probe file. Throws an Error naming STATE_DIR, the path and the cause otherwise.
   */
  static open(dir: string): StateStore {
    const path = resolve(dir);
    const shown = path === dir ? JSON.stringify(dir) : `${JSON.stringify(dir)} (${path})`;
    const probe = join(path, `.probe-${process.pid}`);
    let step = 'create it';
    try {
      mkdirSync(path, { recursive: true });
      step = 'write a file in it';
      const fd = openSync(probe, 'w');
      try {
        writeSync(fd, 'probe\n');
        fsyncSync(fd);
      } finally {
        closeSync(fd);
      }
      step = 'rename a file in it';
      renameSync(probe, `${probe}.renamed`);
      step = 'remove a file from it';
      unlinkSync(`${probe}.renamed`);
    } catch (err) {
      for (const leftover of [probe, `${probe}.renamed`]) ignoreError(() => unlinkSync(leftover));
      throw new Error(`STATE_DIR ${shown} cannot be used: could not ${step}: ${message(err)}`, { cause: err });
    }
    return new StateStore(path);
  }

  /**
   * Reads and parses the file `name`, and gives it to `revive` (e.g. History.fromJSON) when given.
   * Missing: null. Unreadable, not UTF-8, not JSON, or refused by `revive` (it throws): the file is
   * renamed to `<name>.corrupt-<ISO time>`, logged at error, and the answer is null, so the service
   * starts without it and a later save cannot overwrite it. Synchronous: meant for start-up.
   */
  load<T = unknown>(name: string, log: Logger, revive?: (value: unknown) => T): T | null {
    const file = join(this.dir, checkName(name));
    let bytes: Buffer;
    try {
      bytes = readFileSync(file);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
      return this.#setAside(name, log, `cannot be read: ${message(err)}`);
    }
    let value: unknown;
    try {
      // fatal: bytes that are not UTF-8 are corruption, not something to replace with U+FFFD.
      value = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes));
    } catch (err) {
      const syntax = err instanceof SyntaxError;
      return this.#setAside(name, log, syntax ? `is not valid JSON: ${err.message}` : 'is not UTF-8 text');
    }
    if (revive === undefined) return value as T;
    try {
      return revive(value);
    } catch (err) {
      return this.#setAside(name, log, `is not a valid state file: ${message(err)}`);
    }
  }

  #setAside(name: string, log: Logger, problem: string): null {
    const dir = JSON.stringify(this.dir);
    const stamp = new Date().toISOString().replaceAll(':', '-');
    let aside = `${name}.corrupt-${stamp}`;
    for (let n = 1; existsSync(join(this.dir, aside)); n++) {
      if (n > MAX_ASIDE_SUFFIX) {
        throw new Error(`STATE_DIR ${dir}: ${name} ${problem}, and too many ${name}.corrupt-* files to set it aside`);
      }
      aside = `${name}.corrupt-${stamp}-${n}`;
    }
    try {
      renameSync(join(this.dir, name), join(this.dir, aside));
    } catch (err) {
      // Starting without it would let the next save overwrite it.
      const cause = message(err);
      throw new Error(`STATE_DIR ${dir}: ${name} ${problem}, and renaming it aside failed: ${cause}`, { cause: err });
    }
    log.error(`state file ${name} ${problem}; renamed aside, starting without it`, {
      dir: this.dir,
      file: name,
      renamedTo: aside,
    });
    return null;
  }

  /**
   * Replaces the file `name` with the concatenated `pieces`: written to `<name>.tmp` in the same
   * directory (awaiting each write, so the event loop runs between pieces; a generator's next piece is
   * built only then), fsynced, renamed over `name`, and the directory fsynced so the rename survives a
   * crash. Saves of one name run one after another in call order, so the last call's content wins.
   * Rejects with an Error naming STATE_DIR and the cause; the old file is then untouched.
   */
  save(name: string, pieces: Iterable<string> | string): Promise<void> {
    checkName(name);
    const previous = this.#saves.get(name) ?? Promise.resolve();
    const done = previous.then(() => this.#write(name, pieces));
    const tail = done.then(ignore, ignore);
    this.#saves.set(name, tail);
    void tail.then(() => {
      if (this.#saves.get(name) === tail) this.#saves.delete(name);
    });
    return done;
  }

  async #write(name: string, pieces: Iterable<string> | string): Promise<void> {
    const file = join(this.dir, name);
    const temp = `${file}.tmp`;
    let handle: FileHandle | undefined;
    try {
      handle = await open(temp, 'w');
      const out = handle;
      // Pieces are encoded into one buffer per save and written when it holds WRITE_CHUNK_BYTES: few
      // system calls for small pieces, and no Buffer per piece for the garbage collector to chase.
      const buffer = new Uint8Array(WRITE_BUFFER_BYTES);
      let used = 0;
      const flush = async (): Promise<void> => {
        await writeAll(out, buffer.subarray(0, used));
        used = 0;
      };
      for (const piece of typeof pieces === 'string' ? [pieces] : pieces) {
        let rest = piece;
        for (;;) {
          const { read, written } = encoder.encodeInto(rest, buffer.subarray(used));
          used += written;
          if (read === rest.length) break;
          rest = rest.slice(read);
          await flush();
        }
        if (used >= WRITE_CHUNK_BYTES) await flush();
      }
      if (used > 0) await flush();
      await handle.sync();
      await handle.close();
      handle = undefined;
      await rename(temp, file);
      await syncDirectory(this.dir);
    } catch (err) {
      await handle?.close().catch(ignore);
      await unlink(temp).catch(ignore);
      throw new Error(`STATE_DIR ${JSON.stringify(this.dir)}: could not save ${name}: ${message(err)}`, { cause: err });
    }
  }
}

async function writeAll(handle: FileHandle, bytes: Uint8Array): Promise<void> {
  let offset = 0;
  while (offset < bytes.length) {
    const { bytesWritten } = await handle.write(bytes, offset, bytes.length - offset);
    offset += bytesWritten;
  }
}

// A rename is durable once the directory entry is: fsync(2), "Calling fsync() does not necessarily
// ensure that the entry in the directory containing the file has also reached disk".
// https://man7.org/linux/man-pages/man2/fsync.2.html
async function syncDirectory(dir: string): Promise<void> {
  const handle = await open(dir, 'r');
  try {
    await handle.sync();
  } catch (err) {
    // Some file systems refuse fsync on a directory; the rename itself has happened.
    if ((err as NodeJS.ErrnoException).code !== 'EINVAL') throw err;
  } finally {
    await handle.close();
  }
}

function checkName(name: string): string {
  if (name === '' || name === '.' || name === '..' || /[/\\\0]/.test(name)) {
    throw new TypeError(`state-store: a state file name must be a plain file name, got ${JSON.stringify(name)}`);
  }
  return name;
}

function message(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

function ignore(): void {}

function ignoreError(action: () => void): void {
  try {
    action();
  } catch {
    // Best effort: the error that matters is already being reported.
  }
}
