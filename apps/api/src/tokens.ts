import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import {
  closeSync,
  mkdirSync,
  openSync,
  readFileSync,
  renameSync,
  statSync,
  unlinkSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { type Clock, deterministicId, systemClock, XhedgeError } from '@xhedge/core';
import { z } from 'zod';
import type { Actor, TokensPort } from './ports.ts';
import { Role, type TokenView } from './schemas.ts';

/** What each role may do: reads need viewer, the brakes risk, changes operator, tokens and roles admin. */
const RANK: Readonly<Record<Role, number>> = { viewer: 1, risk: 2, operator: 3, admin: 4 };
export function roleAllows(have: Role, need: Role): boolean {
  return RANK[have] >= RANK[need];
}

export function sha256Hex(token: string): string {
  return createHash('sha256').update(token, 'utf8').digest('hex');
}

/** A fresh bearer token: `xh_` + 32 random bytes, base64url. */
export function generateToken(random: (n: number) => Buffer = randomBytes): string {
  return `xh_${random(32).toString('base64url')}`;
}

const StoredToken = z.object({
  id: z.string(),
  name: z.string(),
  role: Role,
  sha256: z.string().regex(/^[0-9a-f]{64}$/),
  createdAtMs: z.number(),
  createdBy: z.string(),
});
type StoredToken = z.infer<typeof StoredToken>;
const TokenFile = z.object({ version: z.literal(1), tokens: z.array(StoredToken) });

export interface FileTokenStoreOptions {
  /** JSON file holding token hashes (never clear tokens); undefined keeps them in memory only. */
  file?: string;
  /** An extra admin token (XHEDGE_API_TOKEN): only its hash is kept, in memory. */
  envAdminToken?: string | undefined;
  clock?: Clock;
  random?: (n: number) => Buffer;
}

/** How long a change waits for another process's change of the token file, ms. */
const LOCK_WAIT_MS = 5_000;
/** A lock file older than this was left by a process that died while changing the file, ms. */
const LOCK_STALE_MS = 30_000;

/**
 * Bearer tokens stored as sha256 hashes in a JSON file (mode 0600), compared in constant time. The clear
 * token exists only in the answer to `create`. One file per data folder: API replicas on several hosts
 * need a shared data folder or their own admin token from the environment. Every replica sharing the
 * file sees the others' changes: a check re-reads the file when it changed (a token revoked on one
 * replica is refused by all at their next request), and a change is made under a lock file on the
 * file as it is then (two replicas' changes never undo each other).
 */
export class FileTokenStore implements TokensPort {
  readonly #file: string | undefined;
  readonly #clock: Clock;
  readonly #random: (n: number) => Buffer;
  #tokens: StoredToken[] = [];
  /** The file as last read (modification time, size, inode): a different one is read again. */
  #seen = '';
  readonly #env: StoredToken | undefined;

  constructor(opts: FileTokenStoreOptions = {}) {
    this.#file = opts.file;
    this.#clock = opts.clock ?? systemClock;
    this.#random = opts.random ?? randomBytes;
    if (opts.envAdminToken !== undefined && opts.envAdminToken !== '') {
      if (opts.envAdminToken.length < 16)
        throw new XhedgeError('CONFIG_INVALID', 'XHEDGE_API_TOKEN must be at least 16 characters');
      this.#env = {
        id: 'env-admin',
        name: 'env:XHEDGE_API_TOKEN',
        role: 'admin',
        sha256: sha256Hex(opts.envAdminToken),
        createdAtMs: this.#clock.nowMs(),
        createdBy: 'environment',
      };
    }
    if (this.#file !== undefined) this.#load(this.#file);
  }

  #load(file: string): void {
    let text: string;
    let stamp: string;
    try {
      const st = statSync(file);
      stamp = `${st.mtimeMs}:${st.size}:${st.ino}`;
      if (stamp === this.#seen) return;
      text = readFileSync(file, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      // no file (yet, or removed by an operator): no stored tokens
      this.#tokens = [];
      this.#seen = '';
      return;
    }
    let parsed: ReturnType<typeof TokenFile.safeParse>;
    try {
      parsed = TokenFile.safeParse(JSON.parse(text));
    } catch {
      parsed = { success: false } as ReturnType<typeof TokenFile.safeParse>;
    }
    if (!parsed.success) throw new XhedgeError('CONFIG_INVALID', `token file ${file} is corrupt`);
    this.#tokens = parsed.data.tokens;
    this.#seen = stamp;
  }

  /** The file as it is now (another replica may have changed it). */
  #refresh(): void {
    if (this.#file !== undefined) this.#load(this.#file);
  }

  /**
   * One change of the stored tokens: under the file's lock, on the file as it is now, then written
   * whole (through a temporary file of this process, renamed over it).
   */
  async #change<T>(edit: () => T): Promise<T> {
    const file = this.#file;
    if (file === undefined) return edit();
    const lock = `${file}.lock`;
    const until = Date.now() + LOCK_WAIT_MS;
    for (;;) {
      try {
        closeSync(openSync(lock, 'wx', 0o600));
        break;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
        try {
          if (Date.now() - statSync(lock).mtimeMs > LOCK_STALE_MS) unlinkSync(lock);
        } catch {
          // gone meanwhile: try again
        }
        if (Date.now() > until)
          throw new XhedgeError(
            'CONFLICT',
            `the token file is being changed by another process (${lock}); try again`,
          );
        await new Promise((r) => setTimeout(r, 10));
      }
    }
    try {
      this.#load(file);
      const out = edit();
      const tmp = `${file}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
      writeFileSync(tmp, JSON.stringify({ version: 1, tokens: this.#tokens }, null, 2), { mode: 0o600 });
      renameSync(tmp, file);
      this.#seen = '';
      return out;
    } finally {
      unlinkSync(lock);
    }
  }

  hasAdmin(): boolean {
    this.#refresh();
    return this.#env !== undefined || this.#tokens.some((t) => t.role === 'admin');
  }

  async verify(token: string): Promise<Actor | undefined> {
    this.#refresh();
    const hash = Buffer.from(sha256Hex(token), 'hex');
    let found: StoredToken | undefined;
    // Compare against every stored hash so timing does not tell how many tokens exist or which matched.
    for (const t of this.#env ? [this.#env, ...this.#tokens] : this.#tokens) {
      if (timingSafeEqual(hash, Buffer.from(t.sha256, 'hex'))) found = t;
    }
    return found ? { tokenId: found.id, name: found.name, role: found.role } : undefined;
  }

  async list(): Promise<TokenView[]> {
    this.#refresh();
    return [...(this.#env ? [this.#env] : []), ...this.#tokens].map(view);
  }

  async create(q: { name: string; role: Role }, actor: Actor): Promise<{ token: string; view: TokenView }> {
    const token = generateToken(this.#random);
    const createdAtMs = this.#clock.nowMs();
    const stored: StoredToken = {
      id: deterministicId('tok', sha256Hex(token)),
      name: q.name,
      role: q.role,
      sha256: sha256Hex(token),
      createdAtMs,
      createdBy: actor.name,
    };
    await this.#change(() => this.#tokens.push(stored));
    return { token, view: view(stored) };
  }

  async setRole(id: string, role: Role, _actor: Actor): Promise<TokenView> {
    return this.#change(() => {
      const t = this.#find(id);
      if (role !== 'admin') this.#keepAnAdmin(t, `giving it the ${role} role`);
      t.role = role;
      return view(t);
    });
  }

  /**
   * Revokes a token. The last admin token is not revoked (CONFLICT): nothing could manage tokens after
   * it until a restart (and outside paper profiles, not even then without XHEDGE_API_TOKEN).
   */
  async revoke(id: string, _actor: Actor): Promise<void> {
    await this.#change(() => {
      this.#keepAnAdmin(this.#find(id), 'revoking it');
      this.#tokens = this.#tokens.filter((t) => t.id !== id);
    });
  }

  /**
   * Refuses (CONFLICT) a change that takes the admin role from `t` when it is the last admin token:
   * the environment's admin token counts, and the check runs on the file as it is under its lock, so
   * two replicas each revoking one of the last two admins cannot leave none.
   */
  #keepAnAdmin(t: StoredToken, change: string): void {
    if (t.role !== 'admin' || this.#env !== undefined) return;
    if (this.#tokens.some((x) => x.role === 'admin' && x.id !== t.id)) return;
    throw new XhedgeError(
      'CONFLICT',
      `token ${t.id} (${t.name}) is the last admin token: ${change} would leave no token that can manage tokens; ` +
        'create another admin token first (POST /v1/tokens with "role": "admin")',
      { details: { id: t.id, lastAdmin: true } },
    );
  }

  #find(id: string): StoredToken {
    if (id === this.#env?.id)
      throw new XhedgeError(
        'CONFLICT',
        'the environment admin token is changed in the environment, not here',
      );
    const t = this.#tokens.find((x) => x.id === id);
    if (!t) throw new XhedgeError('NOT_FOUND', `no token ${id}`, { details: { id } });
    return t;
  }
}

function view(t: StoredToken): TokenView {
  return { id: t.id, name: t.name, role: t.role, createdAtMs: t.createdAtMs, createdBy: t.createdBy };
}

export interface AdminTokenBootstrap {
  /** `env`: XHEDGE_API_TOKEN; `generated`: created now (token set, print it once); `existing`: made earlier. */
  source: 'env' | 'generated' | 'existing';
  /** The clear admin token, only when generated now. */
  token?: string;
  /** The one-time file holding the generated token (mode 0600). */
  file?: string;
  /**
   * For `existing`, what the token in `file` is now: `valid` (an admin token), `revoked` (refused),
   * `not-admin` (accepted, but with the lesser role `fileRole`), `missing` (no such file), `unreadable`.
   */
  fileToken?: 'valid' | 'revoked' | 'not-admin' | 'missing' | 'unreadable';
  fileRole?: Role;
  /**
   * The start banner's line about the admin token, never the token itself: where it is, or that the
   * file's token no longer opens the admin routes.
   */
  summary: string;
}

/** What the token kept in `file` is now, by the store. */
async function fileTokenState(
  store: FileTokenStore,
  file: string,
): Promise<Pick<AdminTokenBootstrap, 'fileToken' | 'fileRole' | 'summary'>> {
  let token: string;
  try {
    token = readFileSync(file, 'utf8').trim();
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT')
      return {
        fileToken: 'missing',
        summary: `admin token: no ${file}; use an admin token made through the API (POST /v1/tokens)`,
      };
    // the banner's line only: a start is not refused for it
    return {
      fileToken: 'unreadable',
      summary: `admin token: generated at first start, in ${file}, which cannot be read (${code ?? 'error'})`,
    };
  }
  const actor = token === '' ? undefined : await store.verify(token);
  if (!actor)
    return {
      fileToken: 'revoked',
      summary: `admin token: the one generated at first start, in ${file}, is REVOKED; use another admin token (GET /v1/tokens lists them)`,
    };
  if (actor.role !== 'admin')
    return {
      fileToken: 'not-admin',
      fileRole: actor.role,
      summary: `admin token: the one generated at first start, in ${file}, now has the ${actor.role} role; use another admin token (GET /v1/tokens lists them)`,
    };
  return { fileToken: 'valid', summary: `admin token: generated at first start, in ${file}` };
}

/**
 * Makes sure an admin token exists. With XHEDGE_API_TOKEN set, that is the admin token. Otherwise, on a
 * paper profile, one is generated at first start, written once to `<dataDir>/admin-token` (0600) and
 * returned so the caller prints it; outside paper profiles a missing token is a configuration error.
 */
export async function bootstrapAdminToken(opts: {
  store: FileTokenStore;
  dataDir: string;
  envToken: string | undefined;
  paperProfile: boolean;
}): Promise<AdminTokenBootstrap> {
  if (opts.envToken) return { source: 'env', summary: 'admin token: XHEDGE_API_TOKEN' };
  const file = join(opts.dataDir, 'admin-token');
  if (opts.store.hasAdmin()) return { source: 'existing', file, ...(await fileTokenState(opts.store, file)) };
  if (!opts.paperProfile)
    throw new XhedgeError(
      'CONFIG_INVALID',
      'set XHEDGE_API_TOKEN: an admin token is generated only for paper profiles',
    );
  mkdirSync(opts.dataDir, { recursive: true });
  const system: Actor = { tokenId: 'system', name: 'system:bootstrap', role: 'admin' };
  const { token } = await opts.store.create({ name: 'bootstrap-admin', role: 'admin' }, system);
  writeFileSync(file, `${token}\n`, { mode: 0o600 });
  return {
    source: 'generated',
    token,
    file,
    summary: `admin token: generated now, shown once and kept in ${file}`,
  };
}
