import { runVenueConformance } from '@xhedge/venue/conformance';
import { conformanceSetup } from './testkit.ts';

runVenueConformance('paper-gmx', () => conformanceSetup('paper-gmx', async () => 'ETH-USD:PERP', '0.5'));
runVenueConformance('paper-drift', () => conformanceSetup('paper-drift', async () => 'SOL-USD:PERP', '3'));
runVenueConformance('paper-lyra', () =>
  conformanceSetup(
    'paper-lyra',
    async (v) => {
      const markets = await v.loadMarkets();
      const atm = markets
        .filter((m) => m.instrument.underlying === 'ETH' && m.instrument.optionType === 'call')
        .sort(
          (a, b) =>
            (a.instrument.expiryMs ?? 0) - (b.instrument.expiryMs ?? 0) ||
            Math.abs((a.instrument.strike ?? 0) - 3500) - Math.abs((b.instrument.strike ?? 0) - 3500),
        );
      const pick = atm[0];
      if (!pick) throw new Error('no ETH call listed');
      return pick.instrument.id;
    },
    '1',
  ),
);
runVenueConformance('paper-spot-amm', () =>
  conformanceSetup('paper-spot-amm', async () => 'ETH-USDC:SPOT', '2'),
);
