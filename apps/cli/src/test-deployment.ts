// Test helper for the operator CLIs that work on a deployment's Redis and ledger (kill-switch, dry-run).
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connectRedis, type RedisEndpoint } from '@xhedge/execution';
import { redisPrefixFor } from '@xhedge/runtime';
import { Ledger, openDatabase, TEST_PG_URL } from '@xhedge/store';
import { afterAll, afterEach, beforeAll, beforeEach, vi } from 'vitest';
import { runCli } from './program.ts';
import { captureIo } from './testing.ts';

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

/**
 * The hooks of a block of operator-CLI tests: one Redis client for the block (`redisUrl`), a deployment
 * of its own for each test (`testDeployment`, disposed after it), and `cli(args)` running
 * `xhedge <command> ...args` on that deployment's profile and ledger schema. Register further hooks
 * after calling it: they run inside these.
 */
export function deploymentPerTest(o: { tag: string; command: string; redisUrl: string; extraYaml?: string }) {
  let endpoint: RedisEndpoint | undefined;
  let redis: ReturnType<RedisEndpoint['client']> | undefined;
  let deployment: TestDeployment | undefined;
  beforeAll(async () => {
    endpoint = await connectRedis({ url: o.redisUrl });
    redis = endpoint.client();
  });
  afterAll(async () => {
    await redis?.quit();
    await endpoint?.close();
  });
  beforeEach(async () => {
    deployment = await testDeployment({
      tag: o.tag,
      redisUrl: o.redisUrl,
      ...(o.extraYaml !== undefined ? { extraYaml: o.extraYaml } : {}),
    });
  });
  afterEach(async () => {
    if (deployment && redis) await deployment.dispose(redis);
  });
  const need = <T>(v: T | undefined, what: string): T => {
    if (v === undefined) throw new Error(`deploymentPerTest: no ${what} outside a test`);
    return v;
  };
  return {
    get endpoint() {
      return need(endpoint, 'Redis endpoint');
    },
    get redis() {
      return need(redis, 'Redis client');
    },
    get deployment() {
      return need(deployment, 'deployment');
    },
    /** Runs `xhedge <command> ...args --config <profile> --db-schema <schema>`. */
    async cli(args: string[]) {
      const d = need(deployment, 'deployment');
      const io = captureIo();
      const code = await runCli([o.command, ...args, '--config', d.file, '--db-schema', d.schema], io);
      return { code, ...io };
    },
  };
}
