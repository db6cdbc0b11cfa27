/**
 * Test parts for other packages (`@xhedge/venue-drift/testing`): the litesvm Drift fixture (injected
 * User, PerpMarket and SpotMarket accounts, no program code) and a Solana JSON-RPC HTTP server over it.
 */
export { type DriftFixture, driftFixture, SOL_PRICE_USD } from './fixture.ts';
export { BLOCKHASH_VALIDITY_BLOCKS, LiteSvmRpc } from './litesvm-rpc.ts';
export { type DriftRpcServer, startDriftRpcServer } from './rpc-server.ts';
