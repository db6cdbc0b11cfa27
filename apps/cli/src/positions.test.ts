import { postgresReachable, TEST_PG_URL } from '@xhedge/store';
import { describe, expect, it, vi } from 'vitest';
import { deploymentPerTest } from './test-deployment.ts';

const REDIS_URL = process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';
const pgOk = await postgresReachable();
if (!pgOk)
  console.warn(
    `[cli positions tests] Postgres at ${TEST_PG_URL} not reachable: the positions CLI tests are skipped`,
  );

describe.skipIf(!pgOk)('xhedge positions breaks|ack (real Postgres)', () => {
  const t = deploymentPerTest({ tag: 'positions-cli-test', command: 'positions', redisUrl: REDIS_URL });
  const cli = (args: string[]) => t.cli(args);

  it('lists the open breaks and acknowledges one, audited; bad input names the option', async () => {
    const ledger = t.deployment.ledger;
    expect((await cli(['breaks'])).stdout).toMatch(/no open position break/);
    // what the run's drop-copy check leaves in the ledger when it finds one
    await ledger.setPositionBaseline({
      venue: 'gmx-arb',
      instrument: 'ETH-USD:PERP',
      sizeBase: '2',
      actor: 'drop-copy',
      reason: 'first quiet read',
    });
    await ledger.audit({
      actor: 'drop-copy',
      action: 'position-break',
      subject: 'gmx-arb/ETH-USD:PERP',
      details: { venueSizeBase: 2.7, expectedSizeBase: '2', diffBase: 0.7, sinceMs: 1 },
    });
    const listed = await cli(['breaks']);
    expect(listed.code).toBe(0);
    // every size says its unit: the instrument's base asset in the text, *SizeBase / diffBase in the JSON
    expect(listed.stdout).toMatch(
      /gmx-arb\/ETH-USD:PERP: 2\.7 ETH at the venue, 2 ETH by the ledger \(0\.7 ETH unexplained\)/,
    );
    const json = JSON.parse((await cli(['breaks', '--json'])).stdout) as { breaks: { subject: string }[] };
    expect(json.breaks).toEqual([
      expect.objectContaining({
        subject: 'gmx-arb/ETH-USD:PERP',
        venueSizeBase: 2.7,
        expectedSizeBase: '2',
        diffBase: 0.7,
        sinceMs: 1,
      }),
    ]);
    // a subject whose instrument does not parse still says its sizes are base units
    await ledger.audit({
      actor: 'drop-copy',
      action: 'position-break',
      subject: 'gmx-arb/odd',
      details: { venueSizeBase: 1, expectedSizeBase: '0', diffBase: 1, sinceMs: 1 },
    });
    expect((await cli(['breaks'])).stdout).toMatch(
      /gmx-arb\/odd: 1 base units at the venue, 0 base units by the ledger \(1 base units unexplained\)/,
    );

    for (const [args, msg] of [
      [['ack', '--instrument', 'ETH-USD:PERP', '--reason', 'manual trade'], /--venue is required/],
      [
        ['ack', '--venue', 'Gmx Arb', '--instrument', 'ETH-USD:PERP', '--reason', 'manual trade'],
        /--venue "Gmx Arb" is not a venue id/,
      ],
      [
        ['ack', '--venue', 'gmx-arb', '--instrument', 'ETH', '--reason', 'manual trade'],
        /--instrument "ETH" is not an instrument id/,
      ],
      [['ack', '--venue', 'gmx-arb', '--instrument', 'ETH-USD:PERP', '--reason', 'x'], /--reason: say why/],
    ] as const) {
      const r = await cli([...args]);
      expect(r.code, r.stderr).toBe(2);
      expect(r.stderr).toMatch(msg);
    }
    const unknown = await cli([
      'ack',
      '--venue',
      'gmx-arb',
      '--instrument',
      'BTC-USD:PERP',
      '--reason',
      'not followed',
    ]);
    expect(unknown.code).not.toBe(0);
    expect(unknown.stderr).toMatch(/no drop-copy baseline for gmx-arb\/BTC-USD:PERP/);

    const ack = await cli([
      'ack',
      '--venue',
      'gmx-arb',
      '--instrument',
      'ETH-USD:PERP',
      '--reason',
      'a manual trade on the venue UI',
      '--actor',
      'operator:ana',
    ]);
    expect(ack.code, ack.stderr).toBe(0);
    expect(ack.stdout).toMatch(/gmx-arb\/ETH-USD:PERP: acknowledged; .* the break closes then/);
    expect((await ledger.positionBaselines('gmx-arb'))[0]).toMatchObject({ actor: 'operator:ana' });
    expect((await ledger.positionBaselines('gmx-arb'))[0]?.sizeBase).toBeUndefined();
    expect((await ledger.listAudit({ action: 'position-break.acknowledge' }))[0]).toMatchObject({
      actor: 'operator:ana',
      details: { reason: 'a manual trade on the venue UI' },
    });
  });

  it('without a DATABASE_URL says where the ledger is and how else to reach it', async () => {
    vi.stubEnv('DATABASE_URL', '');
    const r = await cli(['breaks']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/no DATABASE_URL for profile .*GET \/v1\/positions\/breaks/s);
  });
});
