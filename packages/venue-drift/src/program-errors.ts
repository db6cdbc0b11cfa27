import {
  InsufficientFundsError,
  InvalidOrderError,
  RevertedError,
  StaleOracleError,
  type VenueError,
  VenueHaltedError,
} from '@xhedge/venue';

/**
 * What a Drift program error says about the order: the account lacks margin (`funds`), the order
 * itself is wrong (`invalid-order`), the market's oracle is not usable now (`stale-oracle`), the market
 * or exchange is paused (`halted`), a limit the next order may not meet (`retry`), else `reverted`.
 */
export type DriftErrorKind = 'funds' | 'invalid-order' | 'stale-oracle' | 'halted' | 'retry' | 'reverted';

/**
 * protocol-v2 `ErrorCode` (programs/drift/src/error.rs; Anchor custom errors, numbered from 6000 in
 * declaration order, as the IDL's `errors` lists them) that placing or cancelling a perp order can
 * meet. Codes not listed are reported by number.
 */
export const DRIFT_PROGRAM_ERRORS: Readonly<Record<number, readonly [name: string, kind: DriftErrorKind]>> = {
  6003: ['InsufficientCollateral', 'funds'],
  6015: ['SlippageOutsideLimit', 'invalid-order'],
  6016: ['OrderSizeTooSmall', 'invalid-order'],
  6022: ['UnableToLoadOracle', 'stale-oracle'],
  6023: ['PriceBandsBreached', 'invalid-order'],
  6024: ['ExchangePaused', 'halted'],
  6035: ['InvalidOracle', 'stale-oracle'],
  6036: ['OracleNotFound', 'reverted'],
  6042: ['InvalidOrder', 'invalid-order'],
  6043: ['InvalidOrderMaxTs', 'invalid-order'],
  6045: ['InvalidOrderForInitialMarginReq', 'funds'],
  6046: ['InvalidOrderNotRiskReducing', 'invalid-order'],
  6047: ['InvalidOrderSizeTooSmall', 'invalid-order'],
  6048: ['InvalidOrderNotStepSizeMultiple', 'invalid-order'],
  6050: ['InvalidOrderIOC', 'invalid-order'],
  6051: ['InvalidOrderPostOnly', 'invalid-order'],
  6056: ['InvalidOrderMinOrderSize', 'invalid-order'],
  6059: ['OrderAmountTooSmall', 'invalid-order'],
  6060: ['MaxNumberOfOrders', 'retry'],
  6061: ['OrderDoesNotExist', 'reverted'],
  6062: ['OrderNotOpen', 'reverted'],
  6064: ['ReduceOnlyOrderIncreasedRisk', 'invalid-order'],
  6071: ['UserOrderIdAlreadyInUse', 'retry'],
  6078: ['PerpMarketNotFound', 'reverted'],
  6081: ['MarketWrongMutability', 'reverted'],
  6087: ['SpotMarketNotFound', 'reverted'],
  6109: ['OrderBreachesOraclePriceLimits', 'invalid-order'],
  6146: ['MarketActionPaused', 'halted'],
  6147: ['MarketPlaceOrderPaused', 'halted'],
  6148: ['MarketFillOrderPaused', 'halted'],
  6154: ['MaxOpenInterest', 'retry'],
  6157: ['MarginTradingDisabled', 'invalid-order'],
  6191: ['InvalidOrderLimitPrice', 'invalid-order'],
  6213: ['MarketBeingInitialized', 'halted'],
  6254: ['UserReduceOnly', 'invalid-order'],
  6261: ['OracleNonPositive', 'stale-oracle'],
  6262: ['OracleTooVolatile', 'stale-oracle'],
  6263: ['OracleTooUncertain', 'stale-oracle'],
  6264: ['OracleStaleForMargin', 'stale-oracle'],
  6265: ['OracleInsufficientDataPoints', 'stale-oracle'],
  6266: ['OracleStaleForAMM', 'stale-oracle'],
};

/** Anchor's own errors (below 6000) an instruction of the program can fail with before its handler. */
const ANCHOR_ERRORS: Readonly<Record<number, string>> = {
  101: 'InstructionFallbackNotFound',
  102: 'InstructionDidNotDeserialize',
  2000: 'ConstraintMut',
  2003: 'ConstraintRaw',
  3002: 'AccountDiscriminatorMismatch',
  3005: 'AccountNotEnoughKeys',
  3007: 'AccountOwnedByWrongProgram',
  3010: 'AccountNotSigner',
  3012: 'AccountNotInitialized',
};

export interface DriftProgramError {
  /** Index of the failing instruction in the transaction. */
  instruction: number;
  code: number;
  /** The error's name, or `Custom <code>` for one not listed. */
  name: string;
  kind: DriftErrorKind;
}

/**
 * The program error in a transaction error as a node reports it: `{ InstructionError: [index,
 * { Custom: code }] }` (the JSON-RPC shape, or its text). Undefined for any other failure (compute
 * budget, fee payer, a built-in program's own error).
 */
export function decodeDriftProgramError(err: unknown): DriftProgramError | undefined {
  let instruction: unknown;
  let code: unknown;
  if (typeof err === 'object' && err !== null && 'InstructionError' in err) {
    const ie = (err as { InstructionError: unknown }).InstructionError;
    if (Array.isArray(ie)) {
      instruction = ie[0];
      const detail = ie[1];
      if (typeof detail === 'object' && detail !== null && 'Custom' in detail)
        code = (detail as { Custom: unknown }).Custom;
    }
  } else if (typeof err === 'string') {
    const m = /InstructionError\D*(\d+)\D+Custom\D*(\d+)/.exec(err);
    if (m) [instruction, code] = [Number(m[1]), Number(m[2])];
  }
  if (!Number.isSafeInteger(instruction) || !Number.isSafeInteger(code)) return undefined;
  const c = code as number;
  const known = DRIFT_PROGRAM_ERRORS[c];
  return {
    instruction: instruction as number,
    code: c,
    name: known?.[0] ?? ANCHOR_ERRORS[c] ?? `Custom ${c}`,
    kind: known?.[1] ?? 'reverted',
  };
}

/** A transaction error for people: `Drift InsufficientCollateral (6003)`, else its JSON. */
export function describeTransactionError(err: unknown): string {
  const d = decodeDriftProgramError(err);
  return d ? `Drift ${d.name} (${d.code})` : typeof err === 'string' ? err : JSON.stringify(err);
}

export interface LandedFailure {
  venue: string;
  clientOrderId?: string;
  signature: string;
  slot: number;
  logs?: string[];
  err: unknown;
}

/**
 * The venue error for a transaction that landed and failed (outcome `rejected`: it paid its fee and
 * changed nothing), classed by its program error: InsufficientFundsError, InvalidOrderError,
 * StaleOracleError and VenueHaltedError (both retryable), else RevertedError (retryable for the
 * limits a later order may meet: open interest, open orders, a user order id taken meanwhile).
 */
export function landedFailureError(f: LandedFailure): VenueError {
  const d = decodeDriftProgramError(f.err);
  const reason = describeTransactionError(f.err);
  const p = {
    venue: f.venue,
    ...(f.clientOrderId === undefined ? {} : { clientOrderId: f.clientOrderId }),
    message: `transaction ${f.signature} failed on chain: ${reason}`,
    outcome: 'rejected' as const,
    details: {
      signature: f.signature,
      slot: f.slot,
      logs: f.logs?.slice(-10),
      ...(d ? { programError: d.name, programErrorCode: d.code, instruction: d.instruction } : {}),
    },
  };
  switch (d?.kind) {
    case 'funds':
      return new InsufficientFundsError(p);
    case 'invalid-order':
      return new InvalidOrderError(p);
    case 'stale-oracle':
      return new StaleOracleError(p);
    case 'halted':
      return new VenueHaltedError(p);
    default:
      return new RevertedError({ ...p, reason, retryable: d?.kind === 'retry' });
  }
}
