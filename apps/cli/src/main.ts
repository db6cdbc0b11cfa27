#!/usr/bin/env -S npx tsx
import { runCli } from './program.ts';

// A reader that stops early (`xhedge greeks … | head -3`) closes the pipe: that ends the output, it
// is not a crash with a stack trace.
for (const stream of [process.stdout, process.stderr])
  stream.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code === 'EPIPE') process.exit(process.exitCode ?? 0);
    throw err;
  });

const code = await runCli(process.argv.slice(2));
process.exitCode = code;
// The command is done: a connection it gave up on (a Postgres that accepted but never answered)
// must not hold the process open. Unref'd, this only fires when something else keeps it alive.
setTimeout(() => process.exit(code), 1_000).unref();
