import {
  Dec,
  NumericError,
  type Position,
  parseInstrumentId,
  TERMINAL_ORDER_STATUSES,
  toDecimalString,
  XhedgeError,
} from '@xhedge/core';
import type { Ledger, LedgerOrder, PositionBaseline } from '@xhedge/store';
import type { ExecutionMetrics } from './metrics.ts';

/**
 * Where one venue's position in one instrument stands against our own records:
 * - `baselined`: a baseline was just taken (the first quiet read, or one an operator asked for);
 * - `ok`: the venue's size is the baseline plus our fills since;
 * - `in-flight`: an order of ours on it is working or changed moments ago, so the read is not compared;
 * - `suspect`: they differ, for less than the grace period (a fill the ledger has not caught up with);
 * - `break`: they have differed for longer: the venue holds what our ledger cannot explain.
 */
export type PositionCheckState = 'baselined' | 'ok' | 'in-flight' | 'suspect' | 'break';

export interface PositionCheck {
  venue: string;
  instrument: string;
  state: PositionCheckState;
  /** What the venue reports, underlying units (all of its positions in the instrument, netted). */
  venueSizeBase: number;
  /** Baseline plus the signed fills of our orders since, exact decimal; absent without a baseline. */
  expectedSizeBase?: string;
  /** Venue minus expected, underlying units; absent when not compared. */
  diffBase?: number;
  /** When the difference was first seen (suspect and break). */
  sinceMs?: number;
}

export interface DropCopyOptions {
  ledger: Ledger;
  metrics?: ExecutionMetrics;
  /** Largest difference that is not a break, underlying units. @defaultValue 1e-6 */
  toleranceBase?: number;
  /** How long a difference must last, over reads, before it is a break, ms. @defaultValue 60_000 */
  graceMs?: number;
  /** An order of ours changed this recently (or still working) puts its instrument in flight, ms. @defaultValue 10_000 */
  settleMs?: number;
  /** An agreeing instrument's baseline moves up to the newest quiet read this often, ms. @defaultValue 600_000 */
  rollEveryMs?: number;
  /** One venue is checked at most this often (`observe`), ms. @defaultValue 10_000 */
  intervalMs?: number;
  /** Called once per break, after the ledger, log and metrics have it (e.g. to engage a kill switch). */
  onBreak?: (b: PositionCheck) => Promise<void> | void;
  log?: (level: 'info' | 'warn' | 'error', msg: string, data?: Record<string, unknown>) => void;
}

const ACTOR = 'drop-copy';

/**
 * Asks the drop-copy check for a new baseline of one venue's instrument at its next quiet read (the
 * operator has explained the difference), audited as `position-break.acknowledge`; an open break
 * closes then. Any process may call it (the API): the leader's check reads the request from the ledger.
 * @throws XhedgeError NOT_FOUND when the check has no baseline there (it does not follow it yet).
 */
export async function acknowledgePositionBreak(
  ledger: Ledger,
  q: { venue: string; instrument: string; actor: string; reason: string },
): Promise<{ venue: string; instrument: string; breakOpen: boolean }> {
  const subject = `${q.venue}/${q.instrument}`;
  if (!(await ledger.positionBaselines(q.venue)).some((b) => b.instrument === q.instrument))
    throw new XhedgeError('NOT_FOUND', `no drop-copy baseline for ${subject}: the check does not follow it`);
  await ledger.setPositionBaseline({ ...q, sizeBase: null });
  await ledger.audit({
    actor: q.actor,
    action: 'position-break.acknowledge',
    subject,
    details: { reason: q.reason },
  });
  const breakOpen = (await ledger.openPositionBreaks()).some((e) => e.subject === subject);
  return { venue: q.venue, instrument: q.instrument, breakOpen };
}

const signed = (o: LedgerOrder) => new Dec(o.filledSizeBase).mul(o.side === 'buy' ? 1 : -1);

/**
 * The drop-copy check (RISK-CONTROLS "post-trade: reconcile own records against the venue"): for each
 * venue and each instrument our orders trade there, the position the venue reports must be the
 * baseline (the venue's size at an earlier quiet read, kept in the ledger) plus the signed fills of our
 * orders created since. A difference that outlives `graceMs` is a break: a duplicate or unrecorded
 * order, a liquidation, or someone else trading the account. It is written to the ledger's audit
 * (`position-break`), logged, counted and shown on `xhedge_position_break`, and stays open until the
 * venue and the ledger agree again (`position-break-resolved`) or an operator asks for a new baseline
 * (`acknowledge`). Instruments we never ordered on a venue (the options book itself) are not followed,
 * nor options and futures past their expiry (settlement takes them out of the account, so they are not
 * compared even while the venue still shows them): they are dropped with their metric series, except
 * that an open break outlives the expiry until an operator acknowledges it (see `#expired`).
 *
 * Feed it every successful venue read (`observe`); one process at a time should (the leader).
 */
export class DropCopy {
  readonly #o: DropCopyOptions;
  readonly #tol: number;
  readonly #grace: number;
  readonly #settle: number;
  readonly #roll: number;
  /** Instruments followed per venue (traded by us, or with a baseline; not past expiry, unless an open break). */
  readonly #tracked = new Map<string, Set<string>>();
  /** `venue/instrument` → when a difference was first seen, and whether it is an open break. */
  readonly #diff = new Map<string, { sinceMs: number; broken: boolean; expiryNoted?: boolean }>();
  #restored: Promise<void> | undefined;
  readonly #running = new Set<string>();
  readonly #lastCheckMs = new Map<string, number>();
  /** Per venue, the newest read checked (orders created since are looked at for new instruments). */
  readonly #checkedUntil = new Map<string, number>();

  constructor(o: DropCopyOptions) {
    this.#o = o;
    this.#tol = o.toleranceBase ?? 1e-6;
    this.#grace = o.graceMs ?? 60_000;
    this.#settle = o.settleMs ?? 10_000;
    this.#roll = o.rollEveryMs ?? 600_000;
    for (const [k, v] of Object.entries({
      toleranceBase: this.#tol,
      graceMs: this.#grace,
      settleMs: this.#settle,
      rollEveryMs: this.#roll,
    }))
      if (!Number.isFinite(v) || v < 0) throw new NumericError(`DropCopy ${k}`, v);
  }

  /**
   * Checks `venue` with this read unless one is running for it or it was checked less than
   * `intervalMs` ago. Never throws: a failed check is logged and the next read tries again.
   * @param readStartedAtMs when the read began (before the venue was asked), by the run's clock.
   */
  observe(venue: string, positions: readonly Position[], readStartedAtMs: number): void {
    if (this.#running.has(venue)) return;
    if (
      readStartedAtMs - (this.#lastCheckMs.get(venue) ?? Number.NEGATIVE_INFINITY) <
      (this.#o.intervalMs ?? 10_000)
    )
      return;
    this.#running.add(venue);
    this.#lastCheckMs.set(venue, readStartedAtMs);
    this.check(venue, positions, readStartedAtMs)
      .catch((err) =>
        this.#o.log?.('warn', `drop-copy check of venue ${venue} failed; the next read tries again`, {
          venue,
          err: err instanceof Error ? err.message : String(err),
        }),
      )
      .finally(() => this.#running.delete(venue));
  }

  /** Compares one venue's read with the ledger now, and records what changed. */
  async check(
    venue: string,
    positions: readonly Position[],
    readStartedAtMs: number,
  ): Promise<PositionCheck[]> {
    // a failed restore (ledger unreachable) is tried again by the next check
    this.#restored ??= this.#restoreBreaks().catch((err: unknown) => {
      this.#restored = undefined;
      throw err;
    });
    await this.#restored;
    const { ledger } = this.#o;
    const baselines = new Map((await ledger.positionBaselines(venue)).map((b) => [b.instrument, b]));
    // An instrument past its expiry is not followed: it joins the set only while it has an open break
    // (kept for an operator, see `#expired`), so the first expiry ever traded does not stay for ever.
    const follows = (instrument: string) =>
      !isExpired(instrument, readStartedAtMs) || this.#diff.get(`${venue}/${instrument}`)?.broken === true;
    let tracked = this.#tracked.get(venue);
    if (!tracked) {
      tracked = new Set((await ledger.instrumentsTraded(venue)).filter(follows));
      this.#tracked.set(venue, tracked);
    }
    for (const i of baselines.keys()) if (follows(i)) tracked.add(i);
    // orders since the oldest baseline of a live instrument (their fills explain the position) and since
    // the previous check, with a minute's margin for an intent stamped before it reached the ledger (new
    // instruments). An expired instrument is not compared, so its baseline (which no longer rolls forward)
    // does not hold the read back; every other baseline counts, whatever the venue holds.
    const prev = this.#checkedUntil.get(venue);
    let createdFromMs = Math.min(readStartedAtMs, prev === undefined ? readStartedAtMs : prev - 60_000);
    for (const b of baselines.values())
      if (b.atMs < createdFromMs && !isExpired(b.instrument, readStartedAtMs)) createdFromMs = b.atMs;
    const orders = await ledger.ordersForPositionCheck(venue, {
      createdFromMs,
      updatedAfterMs: readStartedAtMs - this.#settle,
    });
    const byInstrument = new Map<string, LedgerOrder[]>();
    for (const o of orders) {
      const mine = byInstrument.get(o.instrument);
      if (mine) mine.push(o);
      else {
        byInstrument.set(o.instrument, [o]);
        if (follows(o.instrument)) tracked.add(o.instrument);
      }
    }
    this.#checkedUntil.set(venue, Math.max(prev ?? readStartedAtMs, readStartedAtMs));
    const sizes = new Map<string, number>();
    for (const p of positions) {
      if (!Number.isFinite(p.sizeBase))
        throw new NumericError(`venue ${venue} position size of ${p.instrument}`, p.sizeBase);
      sizes.set(p.instrument, (sizes.get(p.instrument) ?? 0) + p.sizeBase);
    }
    const out: PositionCheck[] = [];
    for (const instrument of [...tracked].sort()) {
      // an expired option or future leaves the account by settlement, not by an order: no longer compared
      // (also while the venue still shows it, before settlement)
      if (isExpired(instrument, readStartedAtMs)) {
        if (await this.#expired(venue, instrument, baselines.get(instrument), readStartedAtMs))
          tracked.delete(instrument);
        continue;
      }
      const c = await this.#checkOne(
        venue,
        instrument,
        sizes.get(instrument) ?? 0,
        baselines.get(instrument),
        byInstrument.get(instrument) ?? [],
        readStartedAtMs,
      );
      this.#o.metrics?.positionBreak.set({ venue, instrument }, c.state === 'break' ? 1 : 0);
      if (c.diffBase !== undefined) this.#o.metrics?.positionDiffBase.set({ venue, instrument }, c.diffBase);
      out.push(c);
    }
    this.#o.metrics?.positionCheckedAt.set({ venue }, Date.now() / 1000);
    return out;
  }

  /** Asks for a new baseline at the next quiet read: the operator has explained the difference. */
  acknowledge(q: { venue: string; instrument: string; actor: string; reason: string }) {
    return acknowledgePositionBreak(this.#o.ledger, q);
  }

  /**
   * An instrument past its expiry. Without an open break it is dropped: its difference is forgotten and
   * its metric series removed (true). An open break is NOT closed by the expiry: the venue held what our
   * ledger could not explain (someone else trading the account, a duplicate order) and settlement turning
   * it into cash explains nothing, so it stays open, on `xhedge_position_break` and in the ledger's open
   * breaks (also across a restart), until an operator acknowledges it (`acknowledgePositionBreak`); the
   * next check then closes it (`position-break-resolved`, how `acknowledged`, with the expiry) and drops
   * the instrument. It is not compared meanwhile, and its baseline does not hold the ledger read back.
   * @returns whether the instrument is no longer followed.
   */
  async #expired(
    venue: string,
    instrument: string,
    b: PositionBaseline | undefined,
    atMs: number,
  ): Promise<boolean> {
    const key = `${venue}/${instrument}`;
    const d = this.#diff.get(key);
    const expiryMs = expiryMsOf(instrument);
    if (d?.broken) {
      if (b === undefined || b.sizeBase !== undefined) {
        this.#o.metrics?.positionBreak.set({ venue, instrument }, 1);
        if (!d.expiryNoted) {
          d.expiryNoted = true;
          this.#o.log?.(
            'warn',
            `position break on ${key} stays open past the instrument's expiry: acknowledge it once explained`,
            { venue, instrument, expiryMs, sinceMs: d.sinceMs },
          );
        }
        return false;
      }
      await this.#resolve(key, { how: 'acknowledged', by: b.actor, reason: b.reason, expiryMs, atMs });
    }
    this.#diff.delete(key);
    this.#o.metrics?.positionBreak.remove({ venue, instrument });
    this.#o.metrics?.positionDiffBase.remove({ venue, instrument });
    return true;
  }

  async #checkOne(
    venue: string,
    instrument: string,
    venueSizeBase: number,
    b: PositionBaseline | undefined,
    mine: readonly LedgerOrder[],
    atMs: number,
  ): Promise<PositionCheck> {
    const key = `${venue}/${instrument}`;
    const d = this.#diff.get(key);
    const inFlight = mine.some(
      (o) => !TERMINAL_ORDER_STATUSES.has(o.status) || o.updatedAtMs > atMs - this.#settle,
    );
    const base = { venue, instrument, venueSizeBase };
    if (!b || b.sizeBase === undefined) {
      if (inFlight) return { ...base, state: 'in-flight' };
      const sizeBase = toDecimalString(venueSizeBase, 18);
      const reason = b
        ? `asked for by ${b.actor}: ${b.reason}`
        : 'first quiet read of an instrument we trade';
      await this.#o.ledger.setPositionBaseline({ venue, instrument, sizeBase, atMs, actor: ACTOR, reason });
      if (d?.broken)
        await this.#resolve(key, { how: 'acknowledged', by: b?.actor, reason: b?.reason, venueSizeBase });
      this.#diff.delete(key);
      return { ...base, state: 'baselined', expectedSizeBase: sizeBase, diffBase: 0 };
    }
    const expected = mine
      .filter((o) => o.createdAtMs >= b.atMs)
      .reduce((acc, o) => acc.add(signed(o)), new Dec(b.sizeBase));
    const expectedSizeBase = expected.toFixed();
    // exact: 3.65 - 3.25 is 0.4, where a float subtraction gives 0.3999999999999999 (shown to operators)
    const diffBase = new Dec(venueSizeBase).minus(expected).toNumber();
    if (inFlight) {
      // a difference now may be the order's own fill; a break stays open until a quiet read says otherwise
      if (d?.broken) return { ...base, state: 'break', expectedSizeBase, diffBase, sinceMs: d.sinceMs };
      this.#diff.delete(key);
      return { ...base, state: 'in-flight', expectedSizeBase };
    }
    if (Math.abs(diffBase) <= this.#tol) {
      if (d?.broken) await this.#resolve(key, { how: 'agree again', venueSizeBase, expectedSizeBase });
      this.#diff.delete(key);
      if (atMs - b.atMs >= this.#roll)
        await this.#o.ledger.setPositionBaseline({
          venue,
          instrument,
          sizeBase: toDecimalString(venueSizeBase, 18),
          atMs,
          actor: ACTOR,
          reason: 'rolled forward: venue and ledger agree',
        });
      return { ...base, state: 'ok', expectedSizeBase, diffBase };
    }
    const sinceMs = d?.sinceMs ?? atMs;
    if (d?.broken) return { ...base, state: 'break', expectedSizeBase, diffBase, sinceMs };
    if (atMs - sinceMs < this.#grace) {
      this.#diff.set(key, { sinceMs, broken: false });
      return { ...base, state: 'suspect', expectedSizeBase, diffBase, sinceMs };
    }
    this.#diff.set(key, { sinceMs, broken: true });
    const c: PositionCheck = { ...base, state: 'break', expectedSizeBase, diffBase, sinceMs };
    // The break action (halt-venue) first: once the break is on the ledger (the API, an operator's screen)
    // the venue is already halted, and a ledger that fails the audit write does not keep it trading.
    try {
      await this.#o.onBreak?.(c);
    } catch (err) {
      this.#o.log?.('error', `position break on ${key}: the break action failed`, {
        venue,
        instrument,
        err: err instanceof Error ? err.message : String(err),
      });
    }
    await this.#o.ledger.audit({
      actor: ACTOR,
      action: 'position-break',
      subject: key,
      details: {
        venue,
        instrument,
        venueSizeBase,
        expectedSizeBase,
        diffBase,
        sinceMs,
        baseline: { sizeBase: b.sizeBase, atMs: b.atMs },
      },
    });
    this.#o.metrics?.positionBreaks.inc({ venue });
    const unit = baseUnitOf(instrument);
    this.#o.log?.(
      'error',
      `position break on ${venue}: ${instrument} is ${venueSizeBase} ${unit} at the venue, ${expectedSizeBase} ${unit} by our ledger (${diffBase > 0 ? '+' : ''}${diffBase} ${unit} unexplained for ${((atMs - sinceMs) / 1000).toFixed(0)} s)`,
      { venue, instrument, venueSizeBase, expectedSizeBase, diffBase },
    );
    return c;
  }

  async #resolve(key: string, details: Record<string, unknown>): Promise<void> {
    // another process (an earlier leader) may have closed it already
    if (!(await this.#o.ledger.openPositionBreaks()).some((e) => e.subject === key)) return;
    await this.#o.ledger.audit({ actor: ACTOR, action: 'position-break-resolved', subject: key, details });
    this.#o.log?.('info', `position break on ${key} resolved (${String(details.how)})`, details);
  }

  /** Breaks opened before this process started stay open (and are not reported twice). */
  async #restoreBreaks(): Promise<void> {
    for (const e of await this.#o.ledger.openPositionBreaks()) {
      if (!e.subject) continue;
      const since = Number(e.details.sinceMs);
      this.#diff.set(e.subject, { sinceMs: Number.isFinite(since) ? since : e.atMs, broken: true });
    }
  }

  /** Test and shutdown helper: resolves when no check is running. */
  async idle(): Promise<void> {
    while (this.#running.size > 0) await new Promise((r) => setTimeout(r, 5));
  }
}

/** When an option or future expires, ms; undefined for a perp or spot. @throws on a malformed id */
function expiryMsOf(instrument: string): number | undefined {
  const meta = parseInstrumentId(instrument);
  return 'expiryMs' in meta ? meta.expiryMs : undefined;
}

/** Past its expiry at `atMs` (the rule of the check: the expiry instant itself counts as past). */
function isExpired(instrument: string, atMs: number): boolean {
  const expiryMs = expiryMsOf(instrument);
  return expiryMs !== undefined && atMs >= expiryMs;
}

/** The unit of an instrument's sizes: its base asset (ETH for ETH-USD:PERP), else "base units". */
function baseUnitOf(instrument: string): string {
  try {
    return parseInstrumentId(instrument).base;
  } catch {
    return 'base units';
  }
}
