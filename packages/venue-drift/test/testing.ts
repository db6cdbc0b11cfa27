/**
 * Test parts for other packages (`@xhedge/venue-drift/testing`): the litesvm Drift fixture (injected
 * User, PerpMarket and SpotMarket accounts, no program code) and a Solana JSON-RPC HTTP server over it.
 */
export { type DriftFixture, driftFixture, SOL_PRICE_USD } from './fixture.ts';
export { BLOCKHASH_VALIDITY_BLOCKS, LiteSvmRpc } from './litesvm-rpc.ts';
export { type DriftRpcServer, startDriftRpcServer } from './rpc-server.ts';

/**
 * An operator profile (YAML) with one `drift` venue on `rpcUrl` trading SOL-USD:PERP (market 0), the
 * signer in `XHEDGE_DRIFT_KEY`, in a dry run, hedging SOL (vol 5%, a book of perps only) within ±0.5.
 */
export function driftDryRunProfile(o: {
  name: string;
  dataDir: string;
  rpcUrl: string;
  programId: string;
}): string {
  return `version: 1
name: ${o.name}
dataDir: ${o.dataDir}
dryRun: true
underlyings:
  # a book of perps only: no venue marks an option on SOL, so the profile gives the vol
  - symbol: SOL
    quote: USD
    volDecimal: 0.05
venues:
  - id: drift-sol
    kind: drift
    chain: solana:mainnet-beta
    endpoints:
      rpc: [${o.rpcUrl}]
    credentials:
      signer: { env: XHEDGE_DRIFT_KEY }
    params:
      programId: ${o.programId}
      markets:
        - { instrument: SOL-USD:PERP, marketIndex: 0 }
book:
  source: venues
policy:
  tickIntervalMs: 1000
  default:
    kind: band
    bandDelta: 0.5
    urgencyMultiple: 3
    minTradeUsd: 100
    maxOrderUsd: 100000
limits:
  maxOrderNotionalUsd: 100000
  maxHedgeNotionalPerWindowUsd: 1000000
  windowSeconds: 3600
  priceBandBps: 300
  maxSlippageBps: 100
  staleAfterMs: 120000
  maxPositionBase: { SOL: 1000 }
`;
}
