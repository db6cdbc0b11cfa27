import { describe, expect, it } from 'vitest';
import { runCli } from '../program.ts';
import { captureIo } from '../testing.ts';

// The chain itself (anvil, deployments, keeper, seeded book) is exercised end to end with the runtime
// in test/src/e2e/local-chain.test.ts; here only what must fail before anything starts or is cleared.
describe('xhedge local-chain up: bad arguments stop it before anvil starts', () => {
  it.each([
    [['--port', '70000'], /--port must be at most 65535/],
    [['--port', '0'], /port/],
    [['--vol', '-1'], /vol/],
    [['--speed', 'fast'], /speed/],
    [['--keeper-interval-ms', '1.5'], /keeper-interval-ms/],
  ])('%j → exit 2', async (args, message) => {
    const io = captureIo();
    expect(await runCli(['local-chain', 'up', ...args], io)).toBe(2);
    expect(io.stderr).toMatch(message);
    expect(io.stdout).not.toMatch(/starting anvil|cleared/);
  });
});
