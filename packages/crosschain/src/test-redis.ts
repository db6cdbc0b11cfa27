import { connectRedis, type RedisEndpoint } from '@xhedge/execution';
import { Redis } from 'ioredis';

/**
 * Test helper (exported as `@xhedge/crosschain/testing`, not from the index): the machine's Redis (`TEST_REDIS_URL`, default 127.0.0.1:6379) when it
 * answers, else the embedded js-redis-server that `@xhedge/execution`'s `connectRedis` starts — said
 * out loud, so a fresh machine runs the flow tests instead of skipping them.
 */
export async function redisForTests(tag: string): Promise<RedisEndpoint> {
  const url = process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';
  const probe = new Redis(url, {
    lazyConnect: true,
    maxRetriesPerRequest: 0,
    connectTimeout: 500,
    retryStrategy: () => null,
  });
  // The refusal is reported by connect() below; without a listener ioredis would also log it.
  probe.on('error', () => {});
  try {
    await probe.connect();
    await probe.ping();
    return await connectRedis({ url });
  } catch {
    console.info(`[${tag}] no Redis at ${url}: using the embedded js-redis-server`);
    return connectRedis();
  } finally {
    probe.disconnect();
  }
}
