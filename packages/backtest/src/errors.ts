import { XhedgeError } from '@xhedge/core';

/** An input the backtester cannot use (empty sample, bad parameter, too little history). */
export class BacktestInputError extends XhedgeError {
  override name = 'BacktestInputError';
  constructor(message: string, details: Record<string, unknown> = {}) {
    super('BACKTEST_INPUT', message, { details });
  }
}

/** A path chunk failed inside a worker thread. */
export class BacktestWorkerError extends XhedgeError {
  override name = 'BacktestWorkerError';
  constructor(message: string, stack?: string) {
    super('BACKTEST_WORKER', message, stack ? { metaMessages: [stack] } : {});
  }
}

/** A simulated venue's collateral balance cannot pay a bridge debit (caught by the engine: the leg waits). */
export class BacktestCollateralError extends XhedgeError {
  override name = 'BacktestCollateralError';
  constructor(message: string, details: Record<string, unknown> = {}) {
    super('BACKTEST_COLLATERAL', message, { details });
  }
}
