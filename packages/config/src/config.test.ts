import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { ConfigError, parseConfig } from './load.ts';

const paperText = readFileSync(new URL('../../../configs/profiles/paper.yaml', import.meta.url), 'utf8');

// biome-ignore lint/suspicious/noExplicitAny: tests mutate arbitrary config shapes
type Loose = any;
function base(): Record<string, Loose> {
  return {
    version: 1,
    name: 'test',
    underlyings: [{ symbol: 'BTC' }, { symbol: 'ETH' }],
    venues: [
      { id: 'lyra-arb', kind: 'paper-lyra', chain: 'evm:42161' },
      {
        id: 'drift-sol',
        kind: 'paper-drift',
        chain: 'solana:mainnet-beta',
        credentials: { privateKey: { env: 'DRIFT_KEY' } },
      },
    ],
    book: { positions: [{ venue: 'lyra-arb', instrument: 'BTC-USD:OPT:20261225:100000:C', size: -5 }] },
    policy: { default: { kind: 'band', bandDelta: 0.5 } },
    limits: { maxOrderNotionalUsd: 1e6, maxHedgeNotionalPerWindowUsd: 1e7 },
  };
}

function problems(text: string): ConfigError['problems'] {
  try {
    parseConfig(text, 'test.yaml');
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as ConfigError).problems;
  }
  throw new Error('expected the config to be rejected');
}

type Mutation = [name: string, mutate: (c: Record<string, Loose>) => void, path: string, message: RegExp];
const mutations: Mutation[] = [
  ['wrong version', (c) => (c.version = 2), 'version', /version must be 1/],
  ['name of wrong type', (c) => (c.name = 42), 'name', /expected string/],
  ['missing name', (c) => delete c.name, 'name', /expected string/],
  ['missing venues', (c) => delete c.venues, 'venues', /expected array/],
  ['empty venues', (c) => (c.venues = []), 'venues', /at least one venue/],
  ['unknown venue kind', (c) => (c.venues[1].kind = 'binance-magic'), 'venues[1].kind', /unknown venue kind/],
  ['bad chain', (c) => (c.venues[0].chain = 'arbitrum'), 'venues[0].chain', /expected evm:<chain id>/],
  ['chain of the wrong family', (c) => (c.venues[1].chain = 'evm:42161'), 'venues[1].chain', /solana chain/],
  ['bad venue id', (c) => (c.venues[0].id = 'Lyra Arb'), 'venues[0].id', /lower-case slug/],
  ['duplicate venue ids', (c) => (c.venues[1].id = 'lyra-arb'), 'venues[1].id', /duplicate venue id/],
  [
    'inline secret in credentials',
    (c) => (c.venues[1].credentials.privateKey = '0xdeadbeefcafe'),
    'venues[1].credentials.privateKey',
    /never inline/,
  ],
  [
    'inline secret in params',
    (c) => (c.venues[0].params = { apiKey: 'sk-live-123' }),
    'venues[0].params.apiKey',
    /inline secret/,
  ],
  [
    'bad env var name',
    (c) => (c.venues[1].credentials.privateKey = { env: 'lower-case' }),
    'venues[1].credentials.privateKey.env',
    /UPPER_SNAKE_CASE/,
  ],
  ['unknown top-level key', (c) => (c.venuez = []), '', /Unrecognized key/],
  [
    'bad instrument id',
    (c) => (c.book.positions[0].instrument = 'BTC-USD:OPT:20261225:100000:X'),
    'book.positions[0].instrument',
    /C or P/,
  ],
  [
    'position on unknown venue',
    (c) => (c.book.positions[0].venue = 'nowhere'),
    'book.positions[0].venue',
    /unknown venue/,
  ],
  [
    'position underlying not listed',
    (c) => (c.book.positions[0].instrument = 'SOL-USD:PERP'),
    'book.positions[0].instrument',
    /not listed/,
  ],
  ['zero position size', (c) => (c.book.positions[0].size = 0), 'book.positions[0].size', /must not be zero/],
  [
    'size as a string',
    (c) => (c.book.positions[0].size = 'ten'),
    'book.positions[0].size',
    /expected number/,
  ],
  [
    'negative order limit',
    (c) => (c.limits.maxOrderNotionalUsd = -5),
    'limits.maxOrderNotionalUsd',
    /Too small/,
  ],
  ['negative window limit', (c) => (c.limits.windowSeconds = -1), 'limits.windowSeconds', /Too small/],
  ['missing limits', (c) => delete c.limits, 'limits', /expected object/],
  [
    'unknown drop-copy action',
    (c) => (c.dropCopy = { onBreak: 'panic' }),
    'dropCopy.onBreak',
    /alert|halt-venue/,
  ],
  ['zero drop-copy grace', (c) => (c.dropCopy = { graceSeconds: 0 }), 'dropCopy.graceSeconds', /Too small/],
  [
    'venue cap of a malformed venue id',
    (c) => (c.limits.maxVenueNotionalUsd = { 'Not A Venue': 1000 }),
    'limits.maxVenueNotionalUsd.Not A Venue',
    /neither a venue id .* nor \*/,
  ],
  [
    'negative venue cap',
    (c) => (c.limits.maxVenueNotionalUsd = { '*': -1 }),
    'limits.maxVenueNotionalUsd.*',
    /Too small/,
  ],
  [
    'net-delta cap of a lower-case underlying',
    (c) => (c.limits.maxNetDeltaUsd = { eth: 1000 }),
    'limits.maxNetDeltaUsd.eth',
    /neither an underlying .* nor \*/,
  ],
  [
    'zero net-delta cap',
    (c) => (c.limits.maxNetDeltaUsd = { '*': 0 }),
    'limits.maxNetDeltaUsd.*',
    /Too small/,
  ],
  [
    'unknown policy kind',
    (c) => (c.policy.default = { kind: 'yolo' }),
    'policy.default.kind',
    /interval, band, ww, leland/,
  ],
  [
    'policy missing field',
    (c) => (c.policy.default = { kind: 'ww', costBps: 5 }),
    'policy.default.riskAversion',
    /expected number/,
  ],
  [
    'hedge interval of a denormal (1e-320 minutes)',
    (c) => (c.policy.default = { kind: 'interval', intervalMinutes: 1e-320 }),
    'policy.default.intervalMinutes',
    /minutes, at least 1\/60/,
  ],
  [
    'hedge interval over a year',
    (c) => (c.policy.default = { kind: 'leland', intervalMinutes: 1e9, costBps: 5 }),
    'policy.default.intervalMinutes',
    /at most 525600/,
  ],
  [
    'order cap of 1e308 USD',
    (c) => (c.policy.default = { kind: 'band', bandDelta: 0.5, maxOrderUsd: 1e308 }),
    'policy.default.maxOrderUsd',
    /maxOrderUsd is USD, at most 1e12/,
  ],
  [
    'dust guard of 1e308 USD',
    (c) => (c.policy.default = { kind: 'band', bandDelta: 0.5, minTradeUsd: 1e308 }),
    'policy.default.minTradeUsd',
    /minTradeUsd is USD, at most 1e12/,
  ],
  [
    'window cap of 1e300 USD',
    (c) => (c.policy.default = { kind: 'band', bandDelta: 0.5, caps: { maxWindowUsd: 1e300 } }),
    'policy.default.caps.maxWindowUsd',
    /at most 1e12/,
  ],
  [
    'cost over 100%',
    (c) => (c.policy.default = { kind: 'ww', riskAversion: 1e-4, costBps: 20_000 }),
    'policy.default.costBps',
    /at most 10000/,
  ],
  [
    'gamma window of a denormal',
    (c) => (c.policy.default = { kind: 'band', gammaScaled: { z: 1, windowHours: 5e-324 } }),
    'policy.default.gammaScaled.windowHours',
    /at least 1\/3600/,
  ],
  [
    'vol given in percent',
    (c) => (c.market = { underlyings: { BTC: { spot: 95000, vol: 55 } } }),
    'market.underlyings.BTC.vol',
    /decimal/,
  ],
  [
    'paper market drift past what the simulator takes',
    (c) => (c.market = { underlyings: { BTC: { spot: 95000, vol: 0.5, drift: 150 } } }),
    'market.underlyings.BTC.drift',
    /at most 100/,
  ],
  [
    'paper market seed past 32 bits (the generators keep 32: 2^32 + 1 was seed 1)',
    (c) => (c.market = { seed: 2 ** 32 + 1, underlyings: { BTC: { spot: 95000, vol: 0.5 } } }),
    'market.seed',
    /at most 4294967295/,
  ],
  [
    'paper market spot below what the simulator takes',
    (c) => (c.market = { underlyings: { BTC: { spot: 1e-13, vol: 0.5 } } }),
    'market.underlyings.BTC.spot',
    /at least 1e-12/,
  ],
  [
    'redis URL with inline password',
    (c) => (c.redis = { url: 'redis://user:hunter2@10.0.0.1:6379' }),
    'redis.url',
    /password inline/,
  ],
  [
    'database URL with a password in the query',
    (c) => (c.database = { url: 'postgres://10.0.0.1/db?sslmode=require&password=hunter2' }),
    'database.url',
    /password inline.*"password"/,
  ],
  [
    'redis URL with a token in the query',
    (c) => (c.redis = { url: 'rediss://10.0.0.1:6380/0?authToken=hunter2' }),
    'redis.url',
    /password inline.*"authToken"/,
  ],
  [
    'window cap below order cap',
    (c) => (c.limits.maxHedgeNotionalPerWindowUsd = 10),
    'limits.maxHedgeNotionalPerWindowUsd',
    /at least maxOrderNotionalUsd/,
  ],
  [
    'duplicate underlying',
    (c) => c.underlyings.push({ symbol: 'BTC' }),
    'underlyings[2].symbol',
    /duplicate underlying/,
  ],
  [
    'reduce-only policy naming a venue breaker',
    (c) => (c.breakers = { reduceOnlyPasses: { venue: true } }),
    'breakers.reduceOnlyPasses',
    /Unrecognized key.*venue/,
  ],
  ['bad port', (c) => (c.api = { port: 70000 }), 'api.port', /Too big/],
];

describe('config validation', () => {
  it('accepts the paper profile and a minimal config', () => {
    const cfg = parseConfig(paperText, 'paper.yaml');
    expect(cfg.venues.map((v) => v.id)).toEqual(['lyra-arb', 'gmx-arb', 'drift-sol', 'uni-eth']);
    expect(cfg.book.positions.length).toBeGreaterThan(0);
    expect(parseConfig(stringify(base())).policy.tickIntervalMs).toBe(1000);
  });

  it.each(mutations)('rejects %s, naming the path', (_name, mutate, path, message) => {
    const c = base();
    mutate(c);
    const ps = problems(stringify(c));
    const hit = ps.find((p) => p.path === path);
    expect(hit, `problems were: ${JSON.stringify(ps)}`).toBeDefined();
    expect(hit!.message).toMatch(message);
  });

  it('gives the line of the offending value', () => {
    const text = stringify(base()).replace('chain: evm:42161', 'chain: evm:abc');
    const ps = problems(text);
    const hit = ps.find((p) => p.path === 'venues[0].chain')!;
    const line = text.split('\n').findIndex((l) => l.includes('evm:abc')) + 1;
    expect(hit.line).toBe(line);
    expect(hit.hint).toMatch(/evm:42161/);
  });

  it('lists every problem, not only the first', () => {
    const c = base();
    c.venues[0].chain = 'bad';
    c.limits.maxOrderNotionalUsd = -1;
    c.book.positions[0].instrument = 'nope';
    expect(problems(stringify(c)).length).toBeGreaterThanOrEqual(3);
  });

  const syntaxErrors: [string, string][] = [
    ['unclosed flow mapping', 'version: 1\nvenues: [ {id: a\n'],
    ['bad indentation', 'version: 1\nname: x\n  venues: 3\n'],
    ['duplicate key', 'version: 1\nversion: 1\n'],
    ['tab indentation', 'version: 1\nvenues:\n\t- id: a\n'],
  ];
  it.each(syntaxErrors)('reports a YAML syntax error (%s) with its line', (_n, text) => {
    const ps = problems(text);
    expect(ps[0]!.message).toMatch(/YAML syntax/);
    expect(ps[0]!.line).toBeGreaterThanOrEqual(1);
  });

  it('rejects a YAML alias bomb with a ConfigError, not a raw ReferenceError', () => {
    const row = (a: string) => `[${Array(9).fill(a).join(', ')}]`;
    const text = `version: 1\na: &a ${row('x')}\nb: &b ${row('*a')}\nc: &c ${row('*b')}\nd: &d ${row('*c')}\n`;
    const ps = problems(text);
    expect(ps[0]!.message).toMatch(/alias/);
    try {
      parseConfig(text, 'bomb.yaml');
    } catch (err) {
      expect((err as ConfigError).file).toBe('bomb.yaml');
    }
  });

  it('accepts a service URL with harmless query parameters', () => {
    const c = base();
    c.database = { url: 'postgres://10.0.0.1/db?sslmode=require&application_name=xhedge' };
    expect(parseConfig(stringify(c)).database?.url).toMatch(/sslmode/);
  });

  it("refuses a cap keyed by an underlying the profile does not have (it would never apply); venue keys are the run's to check", () => {
    const c = base();
    c.limits.maxVenueNotionalUsd = { 'gmx-arbitrum': 25_000_000, '*': 1_000_000 };
    c.limits.maxPositionBase = { XBT: 200 };
    c.limits.maxNetDeltaUsd = { DOGE: 1000 };
    const ps = problems(stringify(c));
    expect(ps.map((p) => p.path).sort()).toEqual([
      'limits.maxNetDeltaUsd.DOGE',
      'limits.maxPositionBase.XBT',
    ]);
    expect(ps.find((p) => p.path === 'limits.maxPositionBase.XBT')?.message).toMatch(
      /unknown underlying .*would never apply; known: /,
    );
    const ok = base();
    const venue = ok.venues[0].id as string;
    ok.limits.maxVenueNotionalUsd = { [venue]: 1000, '*': 5000 };
    expect(parseConfig(stringify(ok)).limits.maxVenueNotionalUsd).toEqual({ [venue]: 1000, '*': 5000 });
  });

  it('bounds tickIntervalMs by a day and the bps limits by 100 %', () => {
    const c = base();
    c.policy.tickIntervalMs = 1e12;
    c.limits.maxSlippageBps = 50_000;
    c.limits.priceBandBps = 10_001;
    const ps = problems(stringify(c));
    expect(ps.find((p) => p.path === 'policy.tickIntervalMs')?.message).toMatch(/at most 86400000/);
    expect(ps.find((p) => p.path === 'limits.maxSlippageBps')?.message).toMatch(/in bps: at most 10000/);
    expect(ps.find((p) => p.path === 'limits.priceBandBps')?.message).toMatch(/in bps: at most 10000/);
  });

  it('takes the snapshot retention, and names a wrong option by its path', () => {
    const c = base();
    expect(parseConfig(stringify(c)).snapshotRetention).toBeUndefined();
    c.snapshotRetention = {
      fullResolutionDays: 3,
      downsampleEveryMs: 300_000,
      retentionDays: 30,
      batchSize: 500,
    };
    expect(parseConfig(stringify(c)).snapshotRetention).toEqual({
      fullResolutionDays: 3,
      downsampleEveryMs: 300_000,
      retentionDays: 30,
      batchSize: 500,
    });
    c.snapshotRetention = { fullResolutionDays: 30, retentionDays: 14 };
    expect(problems(stringify(c))).toEqual([
      expect.objectContaining({
        path: 'snapshotRetention.fullResolutionDays',
        message: expect.stringMatching(/fullResolutionDays \(30\) must not be above retentionDays \(14\)/),
      }),
    ]);
    c.snapshotRetention = { retentionDays: 5 };
    expect(problems(stringify(c))).toEqual([
      expect.objectContaining({
        path: 'snapshotRetention.retentionDays',
        message: expect.stringMatching(
          /fullResolutionDays \(7, its default\) must not be above retentionDays \(5\)/,
        ),
      }),
    ]);
    c.snapshotRetention = { downsampleEveryMs: 60, retentionDays: -1, intervalMinutes: 0.5, keepDays: 3 };
    const ps = problems(stringify(c));
    expect(ps.map((p) => p.path)).toEqual(
      expect.arrayContaining([
        'snapshotRetention.downsampleEveryMs',
        'snapshotRetention.retentionDays',
        'snapshotRetention.intervalMinutes',
      ]),
    );
    expect(ps.some((p) => p.path === 'snapshotRetention' && /"keepDays"/.test(p.message))).toBe(true);
  });

  it('takes the ledger database limits, and names a wrong one by its path', () => {
    const c = base();
    c.database = {
      url: { env: 'DATABASE_URL' },
      poolSize: 4,
      statementTimeoutMs: 5000,
      queryTimeoutMs: 8000,
    };
    const db = parseConfig(stringify(c)).database;
    expect(db).toMatchObject({ poolSize: 4, statementTimeoutMs: 5000, queryTimeoutMs: 8000 });
    c.database = { queryTimeoutMs: 20_000 };
    expect(problems(stringify(c))).toEqual([
      expect.objectContaining({
        path: 'database.queryTimeoutMs',
        message: expect.stringMatching(/must be above statementTimeoutMs \(30000, its default\)/),
      }),
    ]);
    c.database = { connectTimeoutMs: -1, poolSize: 0, statementTimeoutMs: 1.5, timeoutMs: 5 };
    const paths = problems(stringify(c)).map((p) => p.path);
    expect(paths).toEqual(
      expect.arrayContaining([
        'database.connectTimeoutMs',
        'database.poolSize',
        'database.statementTimeoutMs',
      ]),
    );
    expect(problems(stringify(c)).some((p) => p.path === 'database' && /"timeoutMs"/.test(p.message))).toBe(
      true,
    );
    // starting on a ledger a newer release migrated: a yes/no, named when it is not one
    c.database = { allowNewerLedger: true };
    expect(parseConfig(stringify(c)).database).toMatchObject({ allowNewerLedger: true });
    c.database = { allowNewerLedger: 'yes' };
    expect(problems(stringify(c)).map((p) => p.path)).toEqual(['database.allowNewerLedger']);
  });

  const secretsInParams: [name: string, params: Record<string, Loose>, paths: string[]][] = [
    [
      'a list of private keys',
      { privateKeys: ['0xa1b2c3', '0xd4e5f6'] },
      ['privateKeys[0]', 'privateKeys[1]'],
    ],
    ['an object around an API secret', { apiSecret: { value: 'sk-live-123' } }, ['apiSecret.value']],
    [
      'a list under an API key in a list of accounts',
      { accounts: [{ apiKey: ['k-1'] }] },
      ['accounts[0].apiKey[0]'],
    ],
    ['numbers in a list under a mnemonic', { mnemonic: { words: [12345] } }, ['mnemonic.words[0]']],
    [
      'signers nested under a private-key container',
      { privateKeys: { signers: [{ address: '0xabc', key: '0xdef' }] } },
      ['privateKeys.signers[0].address', 'privateKeys.signers[0].key'],
    ],
    ['an auth token as a list', { authTokens: ['t-1'] }, ['authTokens[0]']],
    ['a session token in an object', { sessionToken: { v: 't-2' } }, ['sessionToken.v']],
    [
      'a secret under a Url key inside a container',
      { apiSecret: { pricesUrl: 'https://x.io/p' } },
      ['apiSecret.pricesUrl'],
    ],
    ['a Url key that holds no URL', { authTokenUrl: 'sk-live-123' }, ['authTokenUrl']],
  ];
  it.each(secretsInParams)('refuses %s in params, by path and never by value', (_n, params, paths) => {
    const c = base();
    c.venues[0].params = params;
    const text = stringify(c);
    let err: unknown;
    try {
      parseConfig(text, 'venues.yaml');
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ConfigError);
    const ce = err as ConfigError;
    expect(ce.file).toBe('venues.yaml');
    expect(ce.message).toContain('venues.yaml');
    const found = ce.problems.filter((p) => p.path.startsWith('venues[0].params')).map((p) => p.path);
    expect(found).toEqual(paths.map((p) => `venues[0].params.${p}`));
    for (const p of ce.problems.filter((q) => q.path.startsWith('venues[0].params')))
      expect(p.line).toBeGreaterThan(1);
    const all = `${ce.message} ${ce.metaMessages?.join(' ')} ${JSON.stringify(ce.details)}`;
    for (const secret of [
      '0xa1b2c3',
      '0xd4e5f6',
      'sk-live-123',
      'k-1',
      '12345',
      '0xdef',
      't-1',
      't-2',
      'hunter2',
    ])
      expect(all).not.toContain(secret);
  });

  const allowedParams: [name: string, params: Record<string, Loose>][] = [
    [
      "GMX's index tokens",
      {
        indexTokens: [{ address: '0x47904963fc8b2340414262125aF798B9655E58Cd', symbol: 'BTC', decimals: 8 }],
      },
    ],
    ["GMX's token list URL", { tokensUrl: 'https://arbitrum-api.gmxinfra.io/tokens' }],
    ["GMX's prices URL", { pricesUrl: 'https://arbitrum-api.gmxinfra.io/prices/tickers?chain=arbitrum' }],
    ['a list of URLs', { apiKeyUrls: ['https://a.example.org/keys', 'https://b.example.org/keys'] }],
    // an endpoint's key is part of its URL (as an RPC URL's may be): masked wherever it is shown
    ['a URL setting with its key in the query', { pricesUrl: 'https://api.example.org/p?apikey=k3y' }],
    ['a URL setting with userinfo', { tokensUrl: 'https://user:k3y@api.example.org/tokens' }],
    ['secret references in a container', { privateKeys: [{ env: 'KEY_A' }, { keyFile: '/run/keys/b' }] }],
    ['a secret reference under a secret name', { apiSecret: { env: 'API_SECRET' } }],
    ['token settings that are not secrets', { tokens: { quote: { address: '0xabc', decimals: 6 } } }],
  ];
  it.each(allowedParams)('accepts %s in params', (_n, params) => {
    const c = base();
    c.venues[0].params = params;
    expect(parseConfig(stringify(c), 'venues.yaml').venues[0]!.params).toEqual(params);
  });

  it('rejects a file that is not a mapping', () => {
    expect(problems('- 1\n- 2\n')[0]!.message).toMatch(/mapping/);
  });

  it('never echoes a secret value in any message', () => {
    const c = base();
    c.venues[1].credentials.privateKey = '0xSUPERSECRETKEY';
    c.venues[0].params = { nested: { password: 'hunter2-secret' } };
    c.redis = { url: 'redis://u:pa55word@127.0.0.1:6379' };
    c.database = { url: 'postgres://127.0.0.1/db?password=qu3ryPass' };
    try {
      parseConfig(stringify(c));
      expect.unreachable();
    } catch (err) {
      const all = `${(err as Error).message} ${JSON.stringify((err as ConfigError).details)}`;
      expect(all).not.toContain('SUPERSECRET');
      expect(all).not.toContain('hunter2');
      expect(all).not.toContain('pa55word');
      expect(all).not.toContain('qu3ryPass');
    }
  });
});
