// A process of its own for `file-store.test.ts` (run with `node --import tsx`). Argv: a mode, the store
// file. `hold`: opens the file transfer store, sends one transfer through a paper bridge over it, prints
// one JSON line (its pid, the transfer's state) and keeps the store open until it is killed. `try`: tries
// to open the store, prints one JSON line (opened, or the error's code and message) and exits. Not part
// of the package.
import { ManualClock } from '@xhedge/core';
import { openFileTransferStore } from './file-store.ts';
import { type BridgeEndpoint, PaperBridge } from './paper-bridge.ts';
import { TransferTracker } from './tracker.ts';

const [mode, file] = process.argv.slice(2);
if ((mode !== 'hold' && mode !== 'try') || !file)
  throw new Error('usage: file-store.child.ts <hold|try> <store file>');

if (mode === 'try') {
  try {
    openFileTransferStore(file).close();
    console.log(JSON.stringify({ pid: process.pid, opened: true }));
  } catch (err) {
    const e = err as { code?: string; message?: string };
    console.log(JSON.stringify({ pid: process.pid, opened: false, code: e.code, message: e.message }));
  }
} else {
  const store = openFileTransferStore(file);
  const clock = new ManualClock(0);
  const endpoint = (id: string, chain: 'evm:42161' | 'evm:10'): BridgeEndpoint => ({
    id,
    chain,
    debitBalance: async () => undefined,
    creditBalance: async () => undefined,
  });
  const bridge = new PaperBridge({
    clock,
    venues: [endpoint('arb', 'evm:42161'), endpoint('op', 'evm:10')],
    costModel: { estimate: () => ({ feeUsd: 0.5, latencyMs: 60_000 }) },
    tracker: new TransferTracker({ store, clock }),
  });
  const sent = await bridge.send({
    transferId: 'x_child',
    fromVenue: 'arb',
    toVenue: 'op',
    asset: 'USDC',
    amount: '100',
  });
  console.log(JSON.stringify({ pid: process.pid, state: sent.state }));
  // held until killed
  setInterval(() => undefined, 60_000);
}
