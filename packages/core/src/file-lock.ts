import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import { hostname } from 'node:os';
import path from 'node:path';

/**
 * A single-writer file lock: `<file>.lock` names the process that holds `file` (pid, host, since when, a
 * random token, and where Linux's /proc has them the boot id and the process's start time). Taken with an
 * exclusive create; a live holder is refused; a dead one's lock (on this host: written in another boot,
 * its pid not running, or its pid running but started at another time, a reused pid) is taken over under
 * `<file>.lock.recover`, so two processes finding it stale at once do not both take it. A lock of another
 * host, or of this host's name in another pid namespace (a container beside this one), cannot be checked
 * by its pid: it is refused while its holder refreshes it (every `heartbeatMs`), and dead once it went
 * unrefreshed for {@link STALE_HEARTBEATS} heartbeats. Where there is no /proc (macOS, Windows), and for locks written
 * without boot id and start time, a lock of this host is dead only when its pid no longer runs.
 *
 * What a refusal says is the caller's: each store makes its own errors ({@link FileLockErrors}).
 */

/** Who holds a file: written to `<file>.lock` when it is taken. */
export interface FileLockHolder {
  pid: number;
  host: string;
  /** Wall-clock ms when it took the lock. */
  sinceMs: number;
  /** Random per taking: tells this taking's lock from a later one of the same pid. */
  token: string;
  /**
   * The host's boot id (Linux: `/proc/sys/kernel/random/boot_id`) when the lock was taken: a lock of an
   * earlier boot is dead whatever its pid. Absent where there is no /proc, and in older locks.
   */
  bootId?: string;
  /**
   * When the holder's process started, in clock ticks since boot (Linux: field 22 of `/proc/<pid>/stat`):
   * a running pid with another start time is a reused pid, not the holder. Absent where there is no
   * /proc, and in older locks.
   */
  startTicks?: number;
  /**
   * The holder's pid namespace (Linux: the link `/proc/self/ns/pid`, e.g. `pid:[4026531836]`): two
   * containers may share a host name and boot id but not their pids, so a pid is only judged in its own
   * namespace. Absent where there is no /proc, and in older locks.
   */
  pidNs?: string;
  /**
   * How often the holder refreshes the lock file's modification time, ms: a lock it has not refreshed
   * for {@link STALE_HEARTBEATS} periods is dead whatever host or namespace wrote it (a container that
   * crashed and came back under another host name left its lock for good). Absent in older locks, which
   * are never taken as stale that way.
   */
  heartbeatMs?: number;
}

/** Missed heartbeats after which a lock whose holder cannot be checked (another host) counts as dead. */
export const STALE_HEARTBEATS = 6;

/** The errors a lock's user throws, in its own words and codes. */
export interface FileLockErrors {
  /**
   * A live holder refused: `why` is `held by`, `held by another host,` (a lock of another host) or
   * `being recovered by` (a live process is taking over a dead holder's lock). `me` is who asked.
   */
  locked(holder: FileLockHolder, why: string, me: FileLockHolder): Error;
  /** The lock kept changing hands (ten tries). */
  contended(): Error;
  /** `lockFile` (the lock or its `.recover`) does not name a holder. */
  unreadable(lockFile: string): Error;
  /** The lock is no longer `lock.me`'s: taken over (`holder`), or removed (`holder` undefined). */
  lost(lock: HeldFileLock, holder: FileLockHolder | undefined): Error;
}

/** A lock this process took (see {@link acquireFileLock}). */
export interface HeldFileLock {
  file: string;
  lockFile: string;
  me: FileLockHolder;
  errors: FileLockErrors;
}

export interface AcquireFileLockOptions {
  /** Releases the lock on a clean exit of the process (one `exit` listener for every such lock). */
  releaseOnExit?: boolean;
  /** How often the lock file's modification time is refreshed while held, ms. @defaultValue 10000 */
  heartbeatMs?: number;
}

/** `pid N on host H (since ISO time)`. */
export function describeFileLockHolder(h: FileLockHolder): string {
  return `pid ${h.pid} on host ${h.host} (since ${new Date(h.sinceMs).toISOString()})`;
}

/** Whether a process of this host runs `pid` (EPERM: it runs, as another user). */
function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * The holder a lock file names; undefined when there is none; throws `unreadable(lockFile)` when it
 * cannot be read as one.
 */
export function readFileLockHolder(
  lockFile: string,
  unreadable: FileLockErrors['unreadable'],
): FileLockHolder | undefined {
  let text: string;
  try {
    text = fs.readFileSync(lockFile, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
  try {
    const h = JSON.parse(text) as Partial<FileLockHolder>;
    if (
      Number.isInteger(h.pid) &&
      typeof h.host === 'string' &&
      typeof h.token === 'string' &&
      typeof h.sinceMs === 'number' &&
      (h.bootId === undefined || typeof h.bootId === 'string') &&
      (h.startTicks === undefined || (Number.isSafeInteger(h.startTicks) && h.startTicks >= 0)) &&
      (h.pidNs === undefined || typeof h.pidNs === 'string') &&
      (h.heartbeatMs === undefined || (Number.isSafeInteger(h.heartbeatMs) && h.heartbeatMs > 0))
    )
      return h as FileLockHolder;
  } catch {
    // reported below
  }
  throw unreadable(lockFile);
}

/**
 * Creates `target` holding `h`, only if it does not exist: written whole to a temp file first and then
 * linked (atomic, fails on an existing file), so no reader sees a half-written lock. False if it exists.
 */
function createExclusive(target: string, h: FileLockHolder): boolean {
  const tmp = `${target}.${h.pid}.${h.token}.tmp`;
  fs.writeFileSync(tmp, JSON.stringify(h));
  try {
    fs.linkSync(tmp, target);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw err;
  } finally {
    fs.rmSync(tmp, { force: true });
  }
}

/** Linux's /proc, where a process's boot id and start time can be read; not on macOS or Windows. */
const hasProc = process.platform === 'linux';

let bootIdCache: { id: string | undefined } | undefined;
/** This boot's id (Linux); undefined where it cannot be read. Read once: it does not change while we run. */
export function currentBootId(): string | undefined {
  if (bootIdCache === undefined) {
    let id: string | undefined;
    if (hasProc) {
      try {
        const text = fs.readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
        if (/^[0-9a-f-]{8,64}$/i.test(text)) id = text;
      } catch {
        // no /proc: the pid rule alone
      }
    }
    bootIdCache = { id };
  }
  return bootIdCache.id;
}

let pidNsCache: { ns: string | undefined } | undefined;
/** This process's pid namespace (Linux: `/proc/self/ns/pid`); undefined where it cannot be read. */
export function currentPidNamespace(): string | undefined {
  if (pidNsCache === undefined) {
    let ns: string | undefined;
    if (hasProc) {
      try {
        ns = fs.readlinkSync('/proc/self/ns/pid');
      } catch {
        // no /proc: pids are judged as of one namespace
      }
    }
    pidNsCache = { ns };
  }
  return pidNsCache.ns;
}

/**
 * When process `pid` started, in clock ticks since boot: field 22 of `/proc/<pid>/stat` (Linux).
 * Undefined when it cannot be read (no /proc, no such process, hidden by hidepid, not in the format).
 * Field 2, the command name in parentheses, may itself hold spaces and parentheses: fields are counted
 * from after its last ')'. The pid in field 1 must be `pid` (a /proc of another pid namespace is not used).
 */
export function processStartTicks(pid: number): number | undefined {
  if (!hasProc) return undefined;
  let text: string;
  try {
    text = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  const open = text.indexOf(' (');
  const close = text.lastIndexOf(')');
  if (open < 0 || close < open || text.slice(0, open) !== String(pid)) return undefined;
  // after the name: field 3 (state) onwards, so field 22 is the 20th
  const ticks = text
    .slice(close + 1)
    .trim()
    .split(/\s+/)[22 - 3];
  if (ticks === undefined || !/^\d+$/.test(ticks)) return undefined;
  const n = Number(ticks);
  return Number.isSafeInteger(n) ? n : undefined;
}

/**
 * A holder that is certainly gone, on this host: written in another boot; or its pid not running; or its
 * pid running but started at another time (a reused pid). Boot id and start time are compared only when
 * both the lock and this host have them; otherwise the pid rule alone. A start time that cannot be read
 * for a running pid (/proc hidden) is not taken as a different one. A lock of another host is never dead.
 */
export function fileLockHolderDead(h: FileLockHolder, lockFile?: string): boolean {
  const ns = currentPidNamespace();
  // another host, or this host's name in another pid namespace (a container beside this one): its pid
  // cannot be checked here; only a lock it stopped refreshing is dead
  if (h.host !== hostname() || (h.pidNs !== undefined && ns !== undefined && h.pidNs !== ns))
    return lockFile !== undefined && heartbeatStale(h, lockFile);
  const bootId = currentBootId();
  if (h.bootId !== undefined && bootId !== undefined && h.bootId !== bootId) return true;
  if (!pidAlive(h.pid)) return true;
  if (h.startTicks === undefined) return false;
  const startTicks = processStartTicks(h.pid);
  if (startTicks === undefined) return !pidAlive(h.pid); // exited meanwhile, or its /proc is hidden
  return startTicks !== h.startTicks;
}

/** Whether `lockFile`, written by `h`, went unrefreshed for {@link STALE_HEARTBEATS} of its heartbeats. */
function heartbeatStale(h: FileLockHolder, lockFile: string): boolean {
  if (h.heartbeatMs === undefined) return false;
  try {
    return Date.now() - fs.statSync(lockFile).mtimeMs > STALE_HEARTBEATS * h.heartbeatMs;
  } catch {
    return false;
  }
}

/** Heartbeat timers of the locks this process holds. */
const heartbeats = new Map<HeldFileLock, NodeJS.Timeout>();

/** Locks this process holds that are released on a clean exit (one listener for all of them). */
const releasedOnExit = new Set<HeldFileLock>();
let exitHook = false;

/**
 * Takes `<file>.lock` for this process (its folder made first): refused while a live holder has it
 * (`errors.locked`), taken over from a dead one (under `<file>.lock.recover`).
 */
export function acquireFileLock(
  file: string,
  errors: FileLockErrors,
  options: AcquireFileLockOptions = {},
): HeldFileLock {
  const lockFile = `${file}.lock`;
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const bootId = currentBootId();
  const startTicks = processStartTicks(process.pid);
  const pidNs = currentPidNamespace();
  const heartbeatMs = options.heartbeatMs ?? 10_000;
  if (!Number.isSafeInteger(heartbeatMs) || heartbeatMs <= 0)
    throw new RangeError(`heartbeatMs must be a whole number of ms > 0, got ${String(heartbeatMs)}`);
  const me: FileLockHolder = {
    pid: process.pid,
    host: hostname(),
    sinceMs: Date.now(),
    token: randomBytes(12).toString('hex'),
    ...(bootId === undefined ? {} : { bootId }),
    ...(startTicks === undefined ? {} : { startTicks }),
    ...(pidNs === undefined ? {} : { pidNs }),
    heartbeatMs,
  };
  const recoverFile = `${lockFile}.recover`;
  const read = (f: string) => readFileLockHolder(f, errors.unreadable);
  for (let attempt = 0; attempt < 10; attempt++) {
    if (createExclusive(lockFile, me)) {
      const held: HeldFileLock = { file, lockFile, me, errors };
      // the heartbeat: the lock's modification time moves while this process holds it (see heartbeatMs)
      const beat = setInterval(() => {
        try {
          if (readFileLockHolder(lockFile, errors.unreadable)?.token !== me.token) return;
          const now = new Date();
          fs.utimesSync(lockFile, now, now);
        } catch {
          // a write checks the lock itself; nothing to do here
        }
      }, heartbeatMs);
      beat.unref();
      heartbeats.set(held, beat);
      if (options.releaseOnExit) {
        releasedOnExit.add(held);
        if (!exitHook) {
          exitHook = true;
          process.on('exit', () => {
            for (const l of releasedOnExit) releaseFileLock(l);
          });
        }
      }
      return held;
    }
    const holder = read(lockFile);
    if (holder === undefined) continue; // released meanwhile
    if (!fileLockHolderDead(holder, lockFile))
      throw errors.locked(holder, holder.host === me.host ? 'held by' : 'held by another host,', me);
    // Stale (its holder died: kill -9, a crash, a reboot): taken over under a second lock, so two
    // processes finding it stale at once do not both remove it and each take a fresh one.
    if (!createExclusive(recoverFile, me)) {
      const recovering = read(recoverFile);
      if (recovering && !fileLockHolderDead(recovering, recoverFile))
        throw errors.locked(recovering, 'being recovered by', me);
      fs.rmSync(recoverFile, { force: true }); // its recoverer died while recovering
      continue;
    }
    try {
      // still the dead holder's (not one a faster process took meanwhile): remove it
      if (read(lockFile)?.token === holder.token) fs.rmSync(lockFile, { force: true });
    } finally {
      if (read(recoverFile)?.token === me.token) fs.rmSync(recoverFile, { force: true });
    }
  }
  throw errors.contended();
}

/** Refuses (`errors.lost`) when the lock is no longer this taking's (taken over, or removed by hand). */
export function assertFileLockHeld(l: HeldFileLock): void {
  const holder = readFileLockHolder(l.lockFile, l.errors.unreadable);
  if (holder?.token !== l.me.token) throw l.errors.lost(l, holder);
}

/** Removes the lock when it is still this taking's; an unreadable or other lock is left for its owner. */
export function releaseFileLock(l: HeldFileLock): void {
  releasedOnExit.delete(l);
  const beat = heartbeats.get(l);
  if (beat) clearInterval(beat);
  heartbeats.delete(l);
  try {
    if (readFileLockHolder(l.lockFile, l.errors.unreadable)?.token === l.me.token)
      fs.rmSync(l.lockFile, { force: true });
  } catch {
    // not this taking's: left alone
  }
}
