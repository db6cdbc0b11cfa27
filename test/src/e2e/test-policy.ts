/**
 * The e2e tests' own hedging policy. Tests that count hedges must not depend on the demo profile's
 * tuning (configs/profiles/paper.yaml may widen its bands, e.g. a smaller WW risk aversion), so they
 * swap the profile's `policy:` section for narrow bands: on the demo book (|Γ| ≈ 1e-3 /USD on BTC,
 * ≈ 0.2 /USD on ETH) a 15-minute 1σ move shifts the delta by ≈ 0.3 BTC and ≈ 3 ETH, well beyond
 * the ±0.1 BTC band and the ≈ ±1.2 ETH WW band (λ = 6 bps, γ = 0.1), so the loop hedges every few
 * simulated minutes.
 */
export const TEST_POLICY_YAML = `policy:
  tickIntervalMs: 1000
  default:
    kind: band
    bandDelta: 0.1
    urgencyMultiple: 3
    minTradeUsd: 100
    maxOrderUsd: 2000000
  perUnderlying:
    ETH:
      kind: ww
      riskAversion: 0.1
      costBps: 6
      minTradeUsd: 100
`;

/** The profile text with its `policy:` section (up to the next top-level key) replaced by {@link TEST_POLICY_YAML}. */
export function withTestPolicy(profileYaml: string): string {
  const out = profileYaml.replace(/^policy:\n(?:[ #].*\n|\n)*/m, TEST_POLICY_YAML);
  if (out === profileYaml || !out.includes('riskAversion: 0.1\n'))
    throw new Error('the profile has no policy section to replace');
  return out;
}
