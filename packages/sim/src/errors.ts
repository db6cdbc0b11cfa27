import { XhedgeError } from '@xhedge/core';

/** A simulator input or state that cannot be used (bad parameters, unknown underlying, bad CSV). */
export class SimError extends XhedgeError {
  override name = 'SimError';
  constructor(message: string, details: Record<string, unknown> = {}) {
    super('SIM_INVALID', message, { details });
  }
}
