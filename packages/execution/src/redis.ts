import type { RedisOptions as BullRedisOptions } from 'bullmq';
import { Redis, type RedisOptions } from 'ioredis';
import { createRedisMock, type RedisMock } from 'js-redis-server';
import { within } from './within.ts';

/** Connection options as BullMQ takes them (host, port, credentials, db, tls). */
export type ConnectionOptions = BullRedisOptions;

export interface RedisEndpoint {
  /**
   * Connection options for BullMQ and for our own clients. Pass these (not a shared ioredis instance)
   * to BullMQ so each Queue/Worker owns and closes its connections.
   */
  readonly options: ConnectionOptions;
  readonly url: string;
  /** True when this helper started an embedded js-redis-server. */
  readonly embedded: boolean;
  /**
   * A new ioredis client for commands (locks, breakers, counters). Callers quit() it. It carries an
   * `error` listener (connection errors go to `onError`): the commands that fail reject on their own,
   * and an ioredis client without a listener prints "Unhandled error event" on every reconnect attempt.
   */
  client(extra?: RedisOptions): Redis;
  /** Stops the embedded server, if one was started. Clients must be closed first. */
  close(): Promise<void>;
}

export interface ConnectRedisOptions {
  /** `redis://` URL; when absent an embedded js-redis-server is started on a free loopback port. */
  url?: string | undefined;
  /** Sees connection-level errors of the clients from `client()` (ioredis reconnects by itself). @defaultValue ignore */
  onError?: ((err: Error) => void) | undefined;
}

/**
 * Redis for execution: `url` (normally `REDIS_URL`) when given, else an embedded js-redis-server on
 * a free loopback port that `close()` stops. Production Redis must run `maxmemory-policy noeviction`
 * (an evicting policy silently drops jobs) and AOF; the embedded one is for single-process use.
 */
export async function connectRedis(opts: ConnectRedisOptions = {}): Promise<RedisEndpoint> {
  let mock: RedisMock | undefined;
  let url = opts.url;
  if (!url) {
    mock = await createRedisMock({ port: 0 });
    url = `redis://${mock.host === '::' || mock.host === '0.0.0.0' ? '127.0.0.1' : mock.host}:${mock.port}`;
  }
  const options = redisOptionsFromUrl(url);
  return {
    options,
    url,
    embedded: mock !== undefined,
    client: (extra = {}) => {
      const c = new Redis({ ...(options as RedisOptions), ...extra });
      c.on('error', opts.onError ?? (() => {}));
      return c;
    },
    async close() {
      await mock?.close();
    },
  };
}

/** `REDIS_URL` when set, else embedded. */
export function connectRedisFromEnv(env: Readonly<Record<string, string | undefined>> = process.env) {
  return connectRedis({ url: env.REDIS_URL });
}

/** ioredis options from a `redis://[user:pass@]host:port[/db]` URL (the password stays out of logs). */
export function redisOptionsFromUrl(url: string): ConnectionOptions {
  const u = new URL(url);
  if (u.protocol !== 'redis:' && u.protocol !== 'rediss:')
    throw new RangeError(`not a redis URL: ${u.protocol}`);
  const o: ConnectionOptions = {
    host: u.hostname || '127.0.0.1',
    port: u.port ? Number(u.port) : 6379,
    // Workers block on Redis; BullMQ requires unlimited retries per request for them.
    maxRetriesPerRequest: null,
  };
  if (u.username) o.username = decodeURIComponent(u.username);
  if (u.password) o.password = decodeURIComponent(u.password);
  const db = u.pathname.replace('/', '');
  if (db) o.db = Number(db);
  if (u.protocol === 'rediss:') o.tls = {};
  return o;
}

/** What a Redis says about keeping jobs and control state (see `redisDurability`). */
export interface RedisDurability {
  version?: string;
  evictionPolicy?: string;
  appendonly?: boolean;
  /** Things that make this Redis unfit for orders: an evicting policy silently drops jobs. */
  errors: string[];
  /** Things to know: without AOF a restart empties the queues (the ledger re-drives them). */
  warnings: string[];
}

/**
 * Reads the settings that decide what a Redis keeps: `maxmemory-policy` must be `noeviction` (any other
 * policy may evict BullMQ jobs and locks under memory pressure), AOF should be on, and BullMQ needs Redis
 * 6.2 or later. A Redis that refuses CONFIG (managed services) or an embedded one gets a warning saying
 * what could not be checked.
 */
export async function redisDurability(redis: Redis): Promise<RedisDurability> {
  const out: RedisDurability = { errors: [], warnings: [] };
  try {
    const m = /redis_version:(\S+)/.exec(await redis.info('server'));
    if (m?.[1]) {
      out.version = m[1];
      const [major = 0, minor = 0] = m[1].split('.').map(Number);
      if (major < 6 || (major === 6 && minor < 2))
        out.errors.push(`Redis ${m[1]} is older than 6.2, the oldest BullMQ supports`);
    }
  } catch (err) {
    out.warnings.push(`INFO refused (${(err as Error).message}): Redis version not checked`);
  }
  try {
    const [, policy] = (await redis.config('GET', 'maxmemory-policy')) as string[];
    const [, aof] = (await redis.config('GET', 'appendonly')) as string[];
    if (policy !== undefined) {
      out.evictionPolicy = policy;
      if (policy !== 'noeviction')
        out.errors.push(
          `maxmemory-policy is ${policy}: Redis may evict queued order jobs, their locks and send claims; set noeviction`,
        );
    }
    if (aof !== undefined) {
      out.appendonly = aof === 'yes';
      if (aof !== 'yes')
        out.warnings.push(
          'appendonly is off: a Redis restart empties the queues (the ledger re-drives the orders) and the control state (restored from the ledger); turn AOF on (appendfsync everysec)',
        );
    }
  } catch (err) {
    out.warnings.push(
      `CONFIG GET refused (${(err as Error).message}): check maxmemory-policy noeviction and AOF on this Redis yourself`,
    );
  }
  return out;
}

/**
 * Closes an ioredis client for good: QUIT (what it has queued is answered first), waiting at most
 * `waitMs`, then a disconnect. A client cut off from Redis (a silent network, or reconnecting with
 * commands queued: QUIT waits behind them) would otherwise hold a shutdown for ever. Never throws.
 */
export async function closeRedisClient(client: Redis, waitMs = 5_000): Promise<void> {
  try {
    await within(
      client.quit().catch(() => undefined),
      waitMs,
      () => undefined,
    );
  } finally {
    client.disconnect();
  }
}
