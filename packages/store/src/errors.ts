import { isDatabaseUnavailable, type OrderStatus, XhedgeError } from '@xhedge/core';

/** The order state machine (core ORDER_TRANSITIONS) forbids this move. */
export class IllegalTransitionError extends XhedgeError {
  override name = 'IllegalTransitionError';
  readonly from: OrderStatus;
  readonly to: OrderStatus;
  constructor(clientOrderId: string, from: OrderStatus, to: OrderStatus) {
    super('ORDER_ILLEGAL_TRANSITION', `order ${clientOrderId}: ${from} → ${to} is not allowed`, {
      details: { clientOrderId, from, to },
    });
    this.from = from;
    this.to = to;
  }
}

/** A writer holding an older lease token than one already seen: a deposed leader. Nothing was written. */
export class FencedOutError extends XhedgeError {
  override name = 'FencedOutError';
  constructor(leaseName: string, token: number, current: number) {
    super(
      'FENCED_OUT',
      `lease ${leaseName}: token ${token} is older than ${current}; not the leader any more`,
      {
        details: { leaseName, token, current },
      },
    );
  }
}

export class LedgerNotFoundError extends XhedgeError {
  override name = 'LedgerNotFoundError';
  constructor(what: string, id: string) {
    super('NOT_FOUND', `${what} ${id} is not in the ledger`, { details: { what, id } });
  }
}

/**
 * The same id was recorded before with different content (a planner bug, a venue's re-report that
 * differs, a reused fill id): never silently accepted. `fields` names every field that differs;
 * `details.recorded` and `details.reported` hold their two values when the caller gives them.
 */
export class LedgerConflictError extends XhedgeError {
  override name = 'LedgerConflictError';
  readonly fields: readonly string[];
  constructor(
    what: string,
    id: string,
    field: string | readonly string[],
    opts: {
      recorded?: Record<string, unknown>;
      reported?: Record<string, unknown>;
      details?: Record<string, unknown>;
    } = {},
  ) {
    const fields = typeof field === 'string' ? [field] : [...field];
    const { recorded, reported } = opts;
    super('CONFLICT', `${what} ${id} was recorded before with a different ${fields.join(', ')}`, {
      details: {
        ...opts.details,
        what,
        id,
        field: fields.join(', '),
        fields,
        ...(recorded ? { recorded } : {}),
        ...(reported ? { reported } : {}),
      },
      ...(recorded && reported
        ? {
            metaMessages: fields.map(
              (f) => `${f}: recorded ${String(recorded[f])}, reported ${String(reported[f])}`,
            ),
          }
        : {}),
    });
    this.fields = fields;
  }
}

/**
 * Whether `err` says the ledger's database could not be reached or answered, not that a statement was
 * wrong (core's `isDatabaseUnavailable`; the store's `DatabaseTimeoutError` and `DB_CONNECTION_LOST` are
 * such errors).
 */
export const isLedgerUnavailable = isDatabaseUnavailable;
