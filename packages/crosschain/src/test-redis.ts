import type { RedisEndpoint } from '@xhedge/execution';
import { machineRedisOrEmbedded } from '@xhedge/execution/testing';

/**
 * Test helper (exported as `@xhedge/crosschain/testing`, not from the index): the machine's Redis
 * (`TEST_REDIS_URL`, default 127.0.0.1:6379) when it answers, else an embedded js-redis-server, said
 * out loud, so a fresh machine runs the flow tests instead of skipping them.
 */
export function redisForTests(tag: string): Promise<RedisEndpoint> {
  return machineRedisOrEmbedded(tag);
}
