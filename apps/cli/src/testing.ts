import type { CliIo } from './io.ts';

/** An in-process CLI io that records what the command prints (non-TTY), for tests. */
export function captureIo(): CliIo & { stdout: string; stderr: string } {
  const io = {
    stdout: '',
    stderr: '',
    isTty: false,
    out: (t: string) => (io.stdout += `${t}\n`),
    err: (t: string) => (io.stderr += `${t}\n`),
  };
  return io;
}
