import type { XhedgeConfig } from '@xhedge/config';

/** Where a deployment's shared state lives, as every process of it (and operator tools) computes it. */
export interface DeploymentEndpoints {
  /** REDIS_URL, else the profile's `redis.url`; undefined = an embedded Redis inside the running process. */
  redisUrl: string | undefined;
  /** DATABASE_URL, else the profile's `database.url`; undefined = PGlite inside the running process. */
  dbUrl: string | undefined;
  /** Redis key prefix of the deployment: `{xhedge}:<profile name>` (see `redisPrefixFor`). */
  redisPrefix: string;
}

/** The config's URL for a service: a literal URL, or the environment variable it names. */
function urlFrom(
  v: { url?: string | { env: string } | undefined } | undefined,
  env: Readonly<Record<string, string | undefined>>,
): string | undefined {
  const u = v?.url;
  if (u === undefined) return undefined;
  return typeof u === 'string' ? u : env[u.env];
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
 */
export function deploymentEndpoints(
  config: Pick<XhedgeConfig, 'name' | 'redis' | 'database'>,
  env: Readonly<Record<string, string | undefined>>,
): DeploymentEndpoints {
  return {
    redisUrl: env.REDIS_URL || urlFrom(config.redis, env),
    dbUrl: env.DATABASE_URL || urlFrom(config.database, env),
    redisPrefix: redisPrefixFor(config.name),
  };
}
