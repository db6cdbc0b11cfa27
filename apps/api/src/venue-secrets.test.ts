import { loadConfigFile, VenueConfig } from '@xhedge/config';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApiServer } from './server.ts';
import { type MemoryPorts, memoryPorts } from './testing/memory-ports.ts';

const cfg = loadConfigFile(new URL('../../../configs/profiles/paper.yaml', import.meta.url).pathname);
const ADMIN = 'admin-token-for-unit-tests-0123456789';
const KEY_A = `0x${'a1'.repeat(32)}`;
const KEY_B = `0x${'b2'.repeat(32)}`;
const SECRETS = /a1a1a1|b2b2b2|sk-live-Secr3t|k3y-in-a-list/;

/**
 * Secret-named venue params are refused wherever they sit: a list of keys, an object around one, a list
 * inside a list of objects, not only a string right under the key. They would otherwise be stored and
 * shown to every viewer by GET /v1/venues.
 */
describe('secret-named venue params inside lists and objects', () => {
  let app: FastifyInstance;
  let ports: MemoryPorts;
  const auth = { authorization: `Bearer ${ADMIN}` };
  // as a config file (or a store written before this check) may still hold them
  const stored = VenueConfig.parse({
    id: 'gmx-legacy',
    kind: 'paper-gmx',
    chain: 'evm:42161',
    params: {
      privateKeys: [KEY_A],
      apiSecret: { value: 'sk-live-Secr3t' },
      accounts: [{ label: 'hot', apiKey: ['k3y-in-a-list'] }],
      keeperDelayMs: 1500,
    },
  });

  beforeAll(async () => {
    ports = memoryPorts({ venues: [...cfg.venues, stored], policy: cfg.policy, adminToken: ADMIN });
    app = await buildApiServer({ ports, logger: false });
    await app.ready();
  });
  afterAll(async () => app.close());

  const venue = (id: string, params: Record<string, unknown>) => ({
    id,
    kind: 'paper-gmx',
    chain: 'evm:42161',
    params,
  });

  it.each([
    [
      'a list of keys',
      { privateKeys: [KEY_A, KEY_B] },
      ['body.params.privateKeys[0]', 'body.params.privateKeys[1]'],
    ],
    [
      'an object around a secret',
      { apiSecret: { value: 'sk-live-Secr3t' } },
      ['body.params.apiSecret.value'],
    ],
    [
      'a list under a secret name inside a list of objects',
      { accounts: [{ label: 'hot', apiKey: ['k3y-in-a-list'] }] },
      ['body.params.accounts[0].apiKey[0]'],
    ],
    [
      'an object in a list of secrets',
      { mnemonics: [{ words: 'sk-live-Secr3t' }] },
      ['body.params.mnemonics[0].words'],
    ],
    [
      'a secret-named field of objects in a list (refused before too: a guard)',
      { signers: [{ address: '0x01', privateKey: KEY_A }, { privateKey: KEY_B }] },
      ['body.params.signers[0].privateKey', 'body.params.signers[1].privateKey'],
    ],
  ])(
    '%s: 400 VALIDATION naming each path, never the value (add and replace)',
    async (_name, params, fields) => {
      for (const [method, url, id] of [
        ['POST', '/v1/venues', 'gmx-new'],
        ['PUT', '/v1/venues/gmx-arb', 'gmx-arb'],
      ] as const) {
        const r = await app.inject({ method, url, headers: auth, payload: venue(id, params) });
        expect(r.statusCode, `${method}: ${r.body}`).toBe(400);
        const e = r.json().error;
        expect(e.code).toBe('VALIDATION');
        expect(e.details.issues).toEqual(
          fields.map((field) => ({
            field,
            message: 'inline secret not allowed; use credentials {env: VAR_NAME}',
          })),
        );
        expect(e.message).toBe(`${fields[0]}: inline secret not allowed; use credentials {env: VAR_NAME}`);
        expect(r.body).not.toMatch(SECRETS);
      }
      expect(await ports.venues.get('gmx-new')).toBeUndefined();
      expect(JSON.stringify(await ports.venues.get('gmx-arb'))).not.toMatch(SECRETS);
    },
  );

  it('references in a list of secrets and lists of ERC-20 tokens are taken', async () => {
    const params = {
      apiKeys: [{ env: 'FEED_KEY_A' }, { keyFile: '/run/secrets/feed-b' }],
      privateKey: { env: 'SIGNER_KEY' },
      indexTokens: [{ address: '0x47904963fc8b2340414262125aF798B9655E58Cd', symbol: 'BTC', decimals: 8 }],
      // GMX's token list URL: a URL (refused as an inline `token` before), shown as any URL is
      tokensUrl: 'https://arbitrum-api.gmxinfra.io/tokens',
    };
    const r = await app.inject({
      method: 'POST',
      url: '/v1/venues',
      headers: auth,
      payload: venue('gmx-refs', params),
    });
    expect(r.statusCode, r.body).toBe(201);
    expect(r.json().params).toEqual({ ...params, tokensUrl: 'https://arbitrum-api.gmxinfra.io/[redacted]' });
    // a secret-named key holding a URL is still a secret given inline
    const keyed = await app.inject({
      method: 'POST',
      url: '/v1/venues',
      headers: auth,
      payload: venue('gmx-keyed', { apiKey: 'https://x.example/k3y' }),
    });
    expect(keyed.statusCode).toBe(400);
    // a URL setting holding its endpoint's key is a URL, as in the config file, and never shown whole
    const url = await app.inject({
      method: 'POST',
      url: '/v1/venues',
      headers: auth,
      payload: venue('gmx-url', { tokensUrl: 'https://user:hunter2@x.example/tokens?apikey=SECRET123' }),
    });
    expect(url.statusCode, url.body).toBe(201);
    expect(url.body).not.toMatch(/hunter2|SECRET123/);
  });

  it('a venue that holds such params already is shown with them masked, to every role', async () => {
    for (const url of ['/v1/venues/gmx-legacy', '/v1/venues']) {
      const r = await app.inject({ url, headers: auth });
      expect(r.statusCode).toBe(200);
      expect(r.body).not.toMatch(SECRETS);
    }
    const v = (await app.inject({ url: '/v1/venues/gmx-legacy', headers: auth })).json();
    expect(v.params).toEqual({
      privateKeys: ['[redacted]'],
      apiSecret: { value: '[redacted]' },
      accounts: [{ label: 'hot', apiKey: ['[redacted]'] }],
      keeperDelayMs: 1500,
    });
    // sent back as it is shown: refused by field, the port keeps the real values
    const back = await app.inject({
      method: 'PUT',
      url: '/v1/venues/gmx-legacy',
      headers: auth,
      payload: venue('gmx-legacy', v.params),
    });
    expect(back.statusCode).toBe(400);
    expect(back.json().error.details.issues.map((i: { field: string }) => i.field)).toEqual([
      'body.params.privateKeys[0]',
      'body.params.apiSecret.value',
      'body.params.accounts[0].apiKey[0]',
    ]);
  });
});
