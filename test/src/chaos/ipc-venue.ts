import type { ChildProcess } from 'node:child_process';
import type { Order, VenueId } from '@xhedge/core';
import {
  AcceptablePriceError,
  InsufficientFundsError,
  InvalidOrderError,
  NotConfirmedError,
  RevertedError,
  type VenueAdapter,
  VenueError,
  VenueHaltedError,
  VenueNetworkError,
  VenueTimeoutError,
} from '@xhedge/venue';

/** A venue call crossing the process boundary (worker child → the parent holding the paper venue). */
export interface VenueCall {
  id: number;
  method: 'placeOrder' | 'getOrderByClientId' | 'cancelOrder' | 'fetchFills';
  args: unknown[];
}
export type VenueReply =
  | { id: number; ok: true; value: unknown }
  | { id: number; ok: false; error: { code: string; message: string; outcome: string; retryable: boolean } };

const BY_CODE: Record<string, new (p: { venue: string; message: string }) => VenueError> = {
  VENUE_TIMEOUT: VenueTimeoutError,
  VENUE_NOT_CONFIRMED: NotConfirmedError,
  VENUE_NETWORK: VenueNetworkError,
  VENUE_HALTED: VenueHaltedError,
  VENUE_INVALID_ORDER: InvalidOrderError,
  VENUE_INSUFFICIENT_FUNDS: InsufficientFundsError,
  VENUE_REVERTED: RevertedError,
  VENUE_ACCEPTABLE_PRICE: AcceptablePriceError,
};

/**
 * The worker child's handle on the parent's paper venue: a transport, not a venue. Only the calls
 * the order processor makes cross; typed venue errors are rebuilt on this side.
 */
export function ipcVenue(id: VenueId, capabilities: VenueAdapter['capabilities']): VenueAdapter {
  let seq = 0;
  const pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: unknown) => void }>();
  process.on('message', (m: VenueReply) => {
    const p = pending.get(m.id);
    if (!p) return;
    pending.delete(m.id);
    if (m.ok) p.resolve(m.value);
    else {
      const Cls = BY_CODE[m.error.code];
      p.reject(
        Cls
          ? new Cls({ venue: id, message: m.error.message })
          : new VenueNetworkError({ venue: id, message: m.error.message, outcome: 'unknown' }),
      );
    }
  });
  const call = (method: VenueCall['method'], ...args: unknown[]) =>
    new Promise<unknown>((resolve, reject) => {
      const msg: VenueCall = { id: ++seq, method, args };
      pending.set(msg.id, { resolve, reject });
      process.send?.(msg);
    });
  const unsupported = () => Promise.reject(new Error('not available over IPC'));
  return {
    id,
    kind: 'paper-ipc',
    chain: 'solana:mainnet-beta',
    capabilities,
    placeOrder: (req) => call('placeOrder', req) as Promise<Order>,
    getOrderByClientId: (cid) => call('getOrderByClientId', cid) as Promise<Order | null>,
    cancelOrder: (cid) => call('cancelOrder', cid) as Promise<Order>,
    fetchFills: (opts) => call('fetchFills', opts ?? {}) as never,
    loadMarkets: unsupported,
    fetchPositions: unsupported,
    fetchBalances: unsupported,
    fetchMarks: unsupported,
    quoteHedge: unsupported,
    health: unsupported,
  };
}

/** Parent side: serves a child's calls from the real paper venue. `onPlace` sees every placeOrder first. */
export function serveVenue(
  child: ChildProcess,
  venue: VenueAdapter,
  onPlace: (clientOrderId: string) => Promise<void>,
): void {
  child.on('message', async (m: VenueCall) => {
    let reply: VenueReply;
    try {
      if (m.method === 'placeOrder') await onPlace((m.args[0] as { clientOrderId: string }).clientOrderId);
      const fn = venue[m.method] as (...a: unknown[]) => Promise<unknown>;
      reply = { id: m.id, ok: true, value: await fn.apply(venue, m.args) };
    } catch (err) {
      const e = err instanceof VenueError ? err : undefined;
      reply = {
        id: m.id,
        ok: false,
        error: {
          code: e?.code ?? 'VENUE_NETWORK',
          message: err instanceof Error ? err.message : String(err),
          outcome: e?.outcome ?? 'unknown',
          retryable: e?.retryable ?? true,
        },
      };
    }
    if (child.connected) child.send(reply);
  });
}
