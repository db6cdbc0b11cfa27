// A process of its own for `worker-start.test.ts` (run with `node --import tsx`): it starts a worker pool
// whose workers cannot connect (the server refuses their credentials; no reconnecting), which fails after
// the pool subscribed to the kill-switch channel. It prints what it saw as one JSON line, closes what it
// opened itself (never the pool: the caller of a failed start has none), and must then exit by itself.
// Argv: the Redis URL, the key prefix. Not part of the runtime.
import { LimitsConfig } from '@xhedge/config';
import { systemClock } from '@xhedge/core';
import { createMarketSimulator } from '@xhedge/sim';
import { Ledger, openDatabase } from '@xhedge/store';
import { createPaperVenue } from '@xhedge/venue-paper';
import { connectRedis } from './redis.ts';
import { controlStack } from './testing.ts';
import { startWorkers } from './worker.ts';

const [url, prefix] = process.argv.slice(2);
if (!url || !prefix) throw new Error('usage: worker-start.child.ts <redis url> <key prefix>');

const redis = await connectRedis({ url });
const cmd = redis.client();
const ledger = new Ledger(await openDatabase());
const stack = await controlStack({
  redis,
  cmd,
  prefix,
  ledger,
  limits: LimitsConfig.parse({ maxOrderNotionalUsd: 1e6, maxHedgeNotionalPerWindowUsd: 1e8 }),
});
const market = createMarketSimulator({
  underlyings: { ETH: { spot: 3500, vol: 0.6 } },
  seed: 3,
  clock: systemClock,
});
const venues = ['a', 'b'].map((id) =>
  createPaperVenue({ id, kind: 'paper-drift', chain: 'solana:mainnet-beta', market }),
);
const subscriber = redis.client();
const listenersBefore = subscriber.listenerCount('message');
let opened = 0;
let closed = 0;
let error: string | undefined;
try {
  await startWorkers({
    ...stack.base,
    connection: {
      ...redis.options,
      connectionName: `${prefix}-child`,
      username: `nobody-${prefix}`,
      password: 'not-the-password',
      retryStrategy: () => null,
    },
    venues: new Map(venues.map((v) => [v.id, v])),
    subscriber,
    onWorker: (w) => {
      opened += 1;
      w.once('closed', () => {
        closed += 1;
      });
    },
  });
} catch (err) {
  error = err instanceof Error ? err.message : String(err);
}
const [, subscribed] = (await cmd.pubsub('NUMSUB', stack.killSwitch.channel)) as [string, number];
console.log(
  JSON.stringify({
    error,
    opened,
    closed,
    subscribed: Number(subscribed),
    listenersBefore,
    listenersAfter: subscriber.listenerCount('message'),
  }),
);
subscriber.disconnect();
for (const v of venues) await v.close?.();
const keys = await cmd.keys(`${prefix}:*`);
if (keys.length) await cmd.del(...keys);
cmd.disconnect();
await redis.close();
await ledger.close();
