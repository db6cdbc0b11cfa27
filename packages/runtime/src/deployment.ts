import type { XhedgeConfig } from '@xhedge/config';
import { XhedgeError } from '@xhedge/core';

/** Where a deployment's shared state lives, as every process of it (and operator tools) computes it. */
export interface DeploymentEndpoints {
  /** REDIS_URL, else the profile's `redis.url`; undefined = an embedded Redis inside the running process. */
  redisUrl: string | undefined;
  /** DATABASE_URL, else the profile's `database.url`; undefined = PGlite inside the running process. */
  dbUrl: string | undefined;
  /** Redis key prefix of the deployment: `{xhedge}:<profile name>` (see `redisPrefixFor`). */
  redisPrefix: string;
  /**
   * Why a service the caller said it can do without (`optional`) has no URL although the profile names
   * one: its env var is not set. Empty when every URL resolved.
   */
  unresolved: string[];
}

/**
 * The config's URL for a service: a literal URL, or the value of the environment variable it names. A
 * named variable that is not set (or empty) is a config error: read as "no URL", it put the run on an
 * embedded Redis or a fresh PGlite ledger, blind to the deployment's working orders, kill switches and
 * hedge windows.
 */
function urlFrom(
  field: 'redis' | 'database',
  v: { url?: string | { env: string } | undefined } | undefined,
  env: Readonly<Record<string, string | undefined>>,
): string | XhedgeError | undefined {
  const u = v?.url;
  if (u === undefined) return undefined;
  if (typeof u === 'string') return u;
  const value = env[u.env];
  if (value) return value;
  const override = field === 'redis' ? 'REDIS_URL' : 'DATABASE_URL';
  return new XhedgeError(
    'CONFIG_INVALID',
    `${field}.url of the profile is the env var ${u.env}, which is not set: set ${u.env} (or ${override}), or leave ${field}.url out for an embedded ${field === 'redis' ? 'Redis' : 'PGlite ledger'}`,
    { details: { field: `${field}.url`, env: u.env } },
  );
}

/**
 * Redis key prefix of a deployment: `{xhedge}:<profile name>` with every character outside
 * `[A-Za-z0-9_-]` replaced by `-` (the hash tag keeps a deployment's keys in one Redis Cluster slot).
 */
export function redisPrefixFor(profileName: string): string {
  return `{xhedge}:${profileName.replace(/[^A-Za-z0-9_-]/g, '-')}`;
}

/**
 * The Redis URL, ledger URL and Redis key prefix of the deployment a profile describes: REDIS_URL and
 * DATABASE_URL win over the profile's `redis.url` / `database.url` (a literal or `{ env: NAME }`).
 * `optional` names the services the caller can do without (an operator command that needs only Redis,
 * or only the ledger): one whose env var is unset is then undefined, its reason in `unresolved`, so the
 * command still runs in an emergency.
 * @throws XhedgeError `CONFIG_INVALID` when a URL the profile takes from an env var is not set there
 *   (for a service not in `optional`).
 */
export function deploymentEndpoints(
  config: Pick<XhedgeConfig, 'name' | 'redis' | 'database'>,
  env: Readonly<Record<string, string | undefined>>,
  o: { optional?: readonly ('redis' | 'database')[] } = {},
): DeploymentEndpoints {
  const unresolved: string[] = [];
  const resolve = (field: 'redis' | 'database', given: string | undefined) => {
    if (given) return given;
    const u = urlFrom(field, field === 'redis' ? config.redis : config.database, env);
    if (!(u instanceof XhedgeError)) return u;
    if (!o.optional?.includes(field)) throw u;
    unresolved.push(u.message);
    return undefined;
  };
  return {
    redisUrl: resolve('redis', env.REDIS_URL),
    dbUrl: resolve('database', env.DATABASE_URL),
    redisPrefix: redisPrefixFor(config.name),
    unresolved,
  };
}
