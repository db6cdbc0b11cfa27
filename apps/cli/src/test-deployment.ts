// Test helper for the operator CLIs that work on a deployment's Redis and ledger (kill-switch, dry-run).
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { RedisEndpoint } from '@xhedge/execution';
import { redisPrefixFor } from '@xhedge/runtime';
import { Ledger, openDatabase, TEST_PG_URL } from '@xhedge/store';
import { vi } from 'vitest';

const PAPER_YAML = readFileSync(new URL('../../../configs/profiles/paper.yaml', import.meta.url), 'utf8');

/** A deployment of a test's own: the paper profile under a unique name, its key prefix, a ledger schema. */
export interface TestDeployment {
  /** The profile file (`--config`). */
  file: string;
  name: string;
  /** Its Redis key prefix. */
  prefix: string;
  /** Its ledger schema (`--db-schema`). */
  schema: string;
  ledger: Ledger;
  /** Unstubs the env, deletes the prefix's keys, drops the schema. */
  dispose(redis: ReturnType<RedisEndpoint['client']>): Promise<void>;
}

/**
 * A fresh deployment for one test (REDIS_URL and DATABASE_URL stubbed to `redisUrl` and the test
 * Postgres): the paper profile renamed `<tag> <random>`, with `extraYaml` appended.
 */
export async function testDeployment(o: {
  tag: string;
  redisUrl: string;
  extraYaml?: string;
}): Promise<TestDeployment> {
  const name = `${o.tag} ${randomBytes(5).toString('hex')}`;
  const file = join(mkdtempSync(join(tmpdir(), 'xhedge-cli-')), 'profile.yaml');
  const text = PAPER_YAML.replace(/^name: .*$/m, `name: ${name}`);
  if (text === PAPER_YAML) throw new Error('paper.yaml has no name: line to replace');
  writeFileSync(file, `${text}${o.extraYaml ? `\n${o.extraYaml}\n` : ''}`);
  const schema = `${o.tag.replace(/[^a-z0-9]/g, '_')}_${randomBytes(6).toString('hex')}`;
  const ledger = new Ledger(await openDatabase({ url: TEST_PG_URL, schema, poolSize: 2 }));
  vi.stubEnv('REDIS_URL', o.redisUrl);
  vi.stubEnv('DATABASE_URL', TEST_PG_URL);
  const prefix = redisPrefixFor(name);
  return {
    file,
    name,
    prefix,
    schema,
    ledger,
    async dispose(redis) {
      vi.unstubAllEnvs();
      const keys = await redis.keys(`${prefix}:*`);
      if (keys.length > 0) await redis.del(...keys);
      await ledger.close();
      const db = await openDatabase({ url: TEST_PG_URL, schema, migrate: false });
      await db.dropSchema();
      await db.close();
    },
  };
}
