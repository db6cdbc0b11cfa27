/**
 * The fee scenario of fees.test.ts, run in a child process: once litesvm 0.8 (linux-x64-gnu binding)
 * has executed a BPF program, the process aborts with std::bad_alloc when the instance is destroyed,
 * by GC or at exit (LiteSVM/litesvm#171), which would kill a vitest fork. The child prints its
 * findings as one `RESULT <json>` line before it exits; the test reads that line and ignores how the
 * child dies afterwards.
 */
import { driftFixture } from './fixture.ts';

const ORDER = {
  instrument: 'SOL-USD:PERP',
  side: 'buy',
  orderType: 'limit',
  sizeBase: '1.5',
  limitPriceUsd: '181.23456',
} as const;

const f = await driftFixture();
f.deployFailingProgram();
const before = f.svm.getBalance(f.authority.publicKey) ?? 0n;
const err = await f.venue.placeOrder({ clientOrderId: 'hedge-fee-1', ...ORDER }).catch((e: unknown) => e);
const paid = before - (f.svm.getBalance(f.authority.publicKey) ?? 0n);
const order = await f.venue.getOrderByClientId('hedge-fee-1');
const result = {
  errorName: err instanceof Error ? err.name : String(err),
  outcome: (err as { outcome?: string }).outcome,
  paidLamports: paid.toString(),
  orderFeeLamports: f.venue.orderFeeLamports().toString(),
  orderStatus: order?.status,
  idState: f.orderIds.get('hedge-fee-1')?.state,
};
process.stdout.write(`RESULT ${JSON.stringify(result)}\n`);
