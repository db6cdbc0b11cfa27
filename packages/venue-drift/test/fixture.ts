import { Keypair, PublicKey, type VersionedTransaction } from '@solana/web3.js';
import { ManualClock } from '@xhedge/core';
import { LiteSVM } from 'litesvm';
import { DriftVenue, keypairSigner } from '../src/adapter.ts';
import type { DriftOrder, DriftPerpPosition, DriftSpotPosition } from '../src/decode.ts';
import {
  encodePerpMarketAccount,
  encodeSpotMarketAccount,
  encodeStateAccount,
  encodeUserAccount,
  encodeUserStatsAccount,
  type PerpMarketInit,
  type SpotMarketInit,
  type StateAccountInit,
} from '../src/encode.ts';
import { driftPda } from '../src/instructions.ts';
import { memoryUserOrderIdStore, UserOrderIdMap, type UserOrderIdStore } from '../src/order-ids.ts';
import { type DriftProgramResult, FIXTURE_ORACLE_OWNER, runDriftProgram } from './drift-program.ts';
import { LiteSvmRpc } from './litesvm-rpc.ts';

/**
 * A fake Drift deployment inside litesvm: program id, PDAs and injected accounts (State, User,
 * UserStats, PerpMarket 0 SOL-PERP, SpotMarket 0 USDC, oracle accounts), no program code. The USDC
 * spot market names an oracle, as on mainnet, so order transactions must carry it.
 */
export interface DriftFixture {
  svm: LiteSVM;
  rpc: LiteSvmRpc;
  programId: PublicKey;
  authority: Keypair;
  /** SOL-PERP's oracle account. */
  oracle: PublicKey;
  /** The USDC spot market's oracle account. */
  usdcOracle: PublicKey;
  clock: ManualClock;
  venue: DriftVenue;
  orderIds: UserOrderIdMap;
  store: UserOrderIdStore;
  /** A second venue over the same accounts and id map, with another sleep (crash injection). */
  withSleep(sleep: (ms: number) => Promise<void>): DriftVenue;
  setUser(init: {
    /** `User.status` bits (USER_STATUS). */
    status?: number;
    /** `User.max_margin_ratio`, MARGIN_PRECISION (0: none). */
    maxMarginRatio?: number;
    perpPositions?: Partial<DriftPerpPosition>[];
    orders?: Partial<DriftOrder>[];
    spotPositions?: Partial<DriftSpotPosition>[];
  }): void;
  /**
   * Rewrites the program's State account: from `init` (perp fee tiers; the default is protocol-v2's
   * tier 0, 10 bps taker), or these exact bytes (a malformed account).
   */
  setState(init?: StateAccountInit | Uint8Array): void;
  /** Rewrites the SOL-PERP market account: the fixture's values with `over` laid on them. */
  setPerpMarket(over?: Partial<PerpMarketInit>): void;
  /** Writes another perp market at its PDA, with a new oracle account unless `init.oracle` names one. */
  putPerpMarket(init: PerpMarketInit): PublicKey;
  /** Writes a spot market at its PDA, with a new oracle account unless `init.oracle` names one. */
  putSpotMarket(init: SpotMarketInit): PublicKey;
  /**
   * Lets order transactions "run": each is checked by the fixture's program stand-in
   * (`test/drift-program.ts`), landing with the program's error when a check fails; when it passes,
   * `apply` writes what the program would have written. Every result goes to `programRuns`.
   */
  emulate(apply?: (run: Extract<DriftProgramResult, { ok: true }>, tx: VersionedTransaction) => void): void;
  programRuns: DriftProgramResult[];
  /** Copies the SPL Memo program's code to the Drift program id: instructions then execute and fail. */
  deployFailingProgram(): void;
}

export const SOL_PRICE_USD = 180;

/** An oracle account owned by the fixture's stand-in oracle program (its contents are never read). */
function newOracle(svm: LiteSVM): PublicKey {
  const oracle = Keypair.generate().publicKey;
  svm.setAccount(oracle, {
    lamports: Number(svm.minimumBalanceForRentExemption(134n)),
    data: new Uint8Array(134),
    owner: FIXTURE_ORACLE_OWNER,
    executable: false,
    rentEpoch: 0,
  });
  return oracle;
}

function setData(svm: LiteSVM, address: PublicKey, owner: PublicKey, data: Buffer): void {
  svm.setAccount(address, {
    lamports: Number(svm.minimumBalanceForRentExemption(BigInt(data.length))),
    data,
    owner,
    executable: false,
    rentEpoch: 0,
  });
}

export async function driftFixture(
  opts: {
    store?: UserOrderIdStore;
    sleepBlocks?: number;
    /** Released id-map records kept for lookups (UserOrderIdMapOptions.historyLimit). */
    historyLimit?: number;
    /** The clock's start, and so the oracle and funding timestamps. @defaultValue 2026-01-05T12:00Z */
    nowMs?: number;
  } = {},
): Promise<DriftFixture> {
  const svm = new LiteSVM();
  const rpc = new LiteSvmRpc(svm);
  const programId = Keypair.generate().publicKey;
  const authority = Keypair.generate();
  const oracle = newOracle(svm);
  const usdcOracle = newOracle(svm);
  svm.airdrop(authority.publicKey, 10_000_000_000n);
  const setState: DriftFixture['setState'] = (init = {}) =>
    setData(
      svm,
      driftPda.state(programId),
      programId,
      init instanceof Uint8Array ? Buffer.from(init) : encodeStateAccount(init),
    );
  setState();
  setData(
    svm,
    driftPda.userStats(programId, authority.publicKey),
    programId,
    encodeUserStatsAccount(authority.publicKey),
  );
  const clock = new ManualClock(opts.nowMs ?? Date.UTC(2026, 0, 5, 12));
  const nowS = BigInt(Math.floor(clock.nowMs() / 1000));
  const perpMarket: PerpMarketInit = {
    pubkey: driftPda.perpMarket(programId, 0),
    marketIndex: 0,
    name: 'SOL-PERP',
    status: 'active',
    oracle,
    lastOraclePrice: 180_000_000n,
    lastOraclePriceTwap: 180_000_000n,
    lastOraclePriceTwapTs: nowS,
    baseAssetReserve: 1_000_000n * 1_000_000_000n,
    quoteAssetReserve: 1_000_000n * 1_000_000_000n,
    sqrtK: 1_000_000n * 1_000_000_000n,
    pegMultiplier: 180_000_000n,
    lastFundingRate: 1_800_000n,
    lastFundingRateTs: nowS,
    fundingPeriod: 3600n,
    orderStepSize: 10_000_000n,
    orderTickSize: 100n,
    minOrderSize: 10_000_000n,
    marginRatioInitial: 1000,
    marginRatioMaintenance: 500,
  };
  const setPerpMarket = (over: Partial<PerpMarketInit> = {}) =>
    setData(
      svm,
      driftPda.perpMarket(programId, 0),
      programId,
      encodePerpMarketAccount({ ...perpMarket, ...over, marketIndex: 0 }),
    );
  setPerpMarket();
  const putSpotMarket: DriftFixture['putSpotMarket'] = (init) => {
    const address = driftPda.spotMarket(programId, init.marketIndex);
    const o = init.oracle ?? newOracle(svm);
    setData(svm, address, programId, encodeSpotMarketAccount({ ...init, pubkey: address, oracle: o }));
    return o;
  };
  putSpotMarket({
    marketIndex: 0,
    name: 'USDC',
    decimals: 6,
    cumulativeDepositInterest: 10_500_000_000n,
    cumulativeBorrowInterest: 11_200_000_000n,
    oracle: usdcOracle,
  });
  const putPerpMarket: DriftFixture['putPerpMarket'] = (init) => {
    const address = driftPda.perpMarket(programId, init.marketIndex);
    const o = init.oracle ?? newOracle(svm);
    setData(svm, address, programId, encodePerpMarketAccount({ ...init, pubkey: address, oracle: o }));
    return o;
  };
  const programRuns: DriftProgramResult[] = [];
  const userPda = driftPda.user(programId, authority.publicKey, 0);
  const setUser: DriftFixture['setUser'] = (init) =>
    setData(
      svm,
      userPda,
      programId,
      encodeUserAccount({
        authority: authority.publicKey,
        spotPositions: [{ marketIndex: 0, scaledBalance: 1000n * 1_000_000_000n, balanceType: 'deposit' }],
        ...init,
      }),
    );
  setUser({
    perpPositions: [
      {
        marketIndex: 0,
        baseAssetAmount: 2_500_000_000n,
        quoteEntryAmount: -450_000_000n,
        quoteAssetAmount: -450_000_000n,
      },
    ],
  });
  const store = opts.store ?? memoryUserOrderIdStore();
  const orderIds = await UserOrderIdMap.open({
    store,
    clock,
    ...(opts.historyLimit === undefined ? {} : { historyLimit: opts.historyLimit }),
  });
  const sleepBlocks = opts.sleepBlocks ?? 1;
  const base = {
    id: 'drift-sol',
    programId,
    signer: keypairSigner(authority),
    rpc,
    markets: [{ marketIndex: 0, instrument: 'SOL-USD:PERP' }],
    orderIds,
    clock,
    solPriceUsd: () => SOL_PRICE_USD,
  };
  // Each confirmation poll moves the local chain forward instead of waiting in real time.
  const venue = new DriftVenue({
    ...base,
    sleep: async (ms) => {
      clock.advance(ms);
      rpc.advance(sleepBlocks);
    },
  });

  return {
    svm,
    rpc,
    programId,
    authority,
    oracle,
    usdcOracle,
    clock,
    venue,
    orderIds,
    store,
    setUser,
    setState,
    setPerpMarket,
    putPerpMarket,
    putSpotMarket,
    programRuns,
    emulate(apply) {
      rpc.emulate = (tx) => {
        const run = runDriftProgram(svm, programId, tx);
        programRuns.push(run);
        if (!run.ok) return { err: run.err };
        apply?.(run, tx);
        return true;
      };
    },
    withSleep: (sleep) => new DriftVenue({ ...base, sleep }),
    deployFailingProgram() {
      const memo = svm.getAccount(new PublicKey('MemoSq4gqABAXKb96qnH8TysNcWxMyWCqXgDLGmfcHr'));
      if (!memo) throw new Error('litesvm has no SPL Memo program');
      svm.setAccount(programId, { ...memo, data: Uint8Array.from(memo.data) });
    },
  };
}
