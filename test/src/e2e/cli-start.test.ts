import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

const root = new URL('../../../', import.meta.url).pathname;
const dir = mkdtempSync(join(tmpdir(), 'xhedge-cli-start-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('`xhedge start` as a child process (what `pnpm start` runs)', () => {
  it('prints where the API, docs and admin token are, hedges, and exits 0 on SIGINT', async () => {
    const profile = join(dir, 'paper.yaml');
    writeFileSync(
      profile,
      readFileSync(join(root, 'configs/profiles/paper.yaml'), 'utf8')
        .replace(/^name: .*$/m, `name: cli-start-${process.pid}`)
        .replace(/^dataDir: .*$/m, `dataDir: ${join(dir, 'data')}`),
    );
    // No services given: the embedded Redis and PGlite, and a generated admin token.
    const env: NodeJS.ProcessEnv = { ...process.env, XHEDGE_PORT: '0', XHEDGE_LOG_LEVEL: 'warn' };
    delete env.REDIS_URL;
    delete env.DATABASE_URL;
    delete env.XHEDGE_API_TOKEN;
    const child = spawn(
      join(root, 'node_modules/.bin/tsx'),
      ['apps/cli/src/main.ts', 'start', '--config', profile],
      {
        cwd: root,
        env,
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    try {
      const deadline = Date.now() + 45_000;
      while (!/Ctrl-C stops it/.test(out)) {
        if (Date.now() > deadline) throw new Error(`no startup banner; output:\n${out}`);
        await new Promise((r) => setTimeout(r, 200));
      }
      const url = /API\s+(http:\/\/127\.0\.0\.1:\d+)\/v1/.exec(out)?.[1];
      const token = /admin token \(shown once; also in (\S+)\): (xh_\S+)/.exec(out);
      expect(url).toBeDefined();
      expect(token?.[2]).toBeDefined();
      expect(readFileSync(token?.[1] ?? '', 'utf8').trim()).toBe(token?.[2]);
      expect(out).toMatch(/docs\s+http:\/\/127\.0\.0\.1:\d+\/docs/);
      expect((await fetch(`${url}/v1/health`)).status).toBe(200);
      const auth = { authorization: `Bearer ${token?.[2]}` };
      let jobs: unknown[] = [];
      while (jobs.length === 0 && Date.now() < deadline) {
        jobs = (await (await fetch(`${url}/v1/hedges/jobs?limit=5`, { headers: auth })).json()) as unknown[];
        if (jobs.length === 0) await new Promise((r) => setTimeout(r, 300));
      }
      expect(jobs.length).toBeGreaterThan(0);
      child.kill('SIGINT');
      expect(await exited).toBe(0);
      expect(out).toContain('stopped cleanly');
    } finally {
      if (child.exitCode === null) child.kill('SIGKILL');
    }
  });
});
