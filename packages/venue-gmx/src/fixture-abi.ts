import { parseAbi } from 'viem';

/**
 * The local contracts' (contracts/GmxV2Lite.sol) set-up and keeper functions: what tests, the fixture
 * and the local keeper call, never the adapter. Kept apart from abi.ts, which holds only what real
 * gmx-synthetics contracts serve (abi.test.ts checks that no item here is in it).
 *
 * Four have upstream's signatures but are a CONTROLLER's calls there (a role the adapter never holds):
 * `DataStore.setUint`, `setInt`, `setBool` (contracts/data/DataStore.sol) and `Oracle.setPrimaryPrice`
 * (contracts/oracle/Oracle.sol). The rest exist only here: the local keeper's `executeOrder(bytes32)` (upstream keepers
 * call `OrderHandler.executeOrder(bytes32 key, OracleUtils.SetPricesParams oracleParams)` with signed
 * prices), the wiring that upstream does with RoleStore roles (`setRouter`, `setEventEmitter`,
 * `setController`, `setPlugin`, `setKeeper`), market listing (`addMarket`, upstream MarketFactory plus
 * Config), the test hook `setPositionPendingValues`, `syncBalance`, and TestToken's `mint`.
 */
export const gmxFixtureAbi = parseAbi([
  'struct PriceProps { uint256 min; uint256 max; }',
  // GmxCore (plays DataStore, OrderVault and OrderHandler)
  'function setUint(bytes32 key, uint256 value) returns (uint256)',
  'function setInt(bytes32 key, int256 value) returns (int256)',
  'function setBool(bytes32 key, bool value) returns (bool)',
  'function executeOrder(bytes32 key)',
  'function setRouter(address router)',
  'function setEventEmitter(address eventEmitter)',
  'function setKeeper(address keeper, bool allowed)',
  'function addMarket(address marketToken, address indexToken, address longToken, address shortToken, uint256 maxOiUsd, uint256 positionFeeFactorBalanceImproved, uint256 positionFeeFactorBalanceNotImproved)',
  'function setPositionPendingValues(bytes32 positionKey, int256 pendingImpactAmount, uint256 borrowingFeeUsd, uint256 fundingFeeAmount, uint256 claimableLongTokenAmount, uint256 claimableShortTokenAmount)',
  'function syncBalance(address token)',
  // Oracle
  'function setPrimaryPrice(address token, PriceProps price)',
  // EventEmitter
  'function setController(address controller, bool allowed)',
  // Router
  'function setPlugin(address plugin, bool allowed)',
  // TestToken (@xhedge/evm)
  'function mint(address to, uint256 amount)',
]);
