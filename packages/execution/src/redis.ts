import type { RedisOptions as BullRedisOptions } from 'bullmq';
import { Redis, type RedisOptions } from 'ioredis';
import { createRedisMock, type RedisMock } from 'js-redis-server';

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
