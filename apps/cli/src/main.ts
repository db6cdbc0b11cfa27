#!/usr/bin/env -S npx tsx
import { endOutputOnClosedPipe } from './io.ts';
import { runCli } from './program.ts';

endOutputOnClosedPipe(process.stdout);
endOutputOnClosedPipe(process.stderr);

const code = await runCli(process.argv.slice(2));
process.exitCode = code;
// The command is done: a connection it gave up on (a Postgres that accepted but never answered)
// must not hold the process open. Unref'd, this only fires when something else keeps it alive.
setTimeout(() => process.exit(code), 1_000).unref();
