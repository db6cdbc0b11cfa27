// A worker process for the chaos suite: real Redis, real Postgres ledger, the parent's paper venue
// over IPC. The parent kills it with SIGKILL mid-order.

import { redisOptionsFromUrl, startWorkers } from '@xhedge/execution';
import { Ledger, openDatabase } from '@xhedge/store';
import { VenueCapabilities } from '@xhedge/venue';
import { Redis } from 'ioredis';
import { parts } from './common.ts';
import { ipcVenue } from './ipc-venue.ts';

const env = process.env;
const redisUrl = env.CHAOS_REDIS_URL as string;
const prefix = env.CHAOS_PREFIX as string;
const db = await openDatabase({
  url: env.CHAOS_PG_URL,
  schema: env.CHAOS_PG_SCHEMA,
  migrate: false,
  poolSize: 3,
});
const ledger = new Ledger(db);
const connection = redisOptionsFromUrl(redisUrl);
const cmd = new Redis(connection as object);
const p = await parts({ cmd, prefix, ledger, connection });
const caps = VenueCapabilities.parse(JSON.parse(env.CHAOS_CAPS as string));
// a warm spare loads everything first and starts taking jobs only when told to
await new Promise<void>((resolve) => {
  process.send?.({ loaded: true });
  process.on('message', (m: { go?: boolean }) => {
    if (m.go) resolve();
  });
});
await startWorkers({
  ...p,
  venues: new Map([['pv', ipcVenue('pv', caps)]]),
  subscriber: new Redis(connection as object),
  sendDeadlineMs: 1500,
  pollIntervalMs: 50,
  pollBudgetMs: 1500,
  settings: { lockDuration: 1500, stalledInterval: 500, concurrency: 4 },
  workerId: `worker:${process.pid}`,
});
process.send?.({ ready: true });
