// What other packages (the cross-package tests) may use from the CLI: the local chain behind
// `xhedge local-chain up`, so tests start exactly what operators start.
export {
  LOCAL_CHAIN_DEFAULT_PORT,
  type LocalChain,
  type LocalChainInfo,
  type LocalChainOptions,
  startLocalChain,
} from './commands/local-chain.ts';
