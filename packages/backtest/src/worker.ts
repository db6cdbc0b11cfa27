import { parentPort } from 'node:worker_threads';
import { type EngineJob, runPaths } from './engine.ts';
import { BacktestInputError } from './errors.ts';

/** Messages between the pool and a worker thread. */
export interface ChunkRequest {
  id: number;
  job: EngineJob;
  start: number;
  end: number;
}
export type WorkerReply =
  | { type: 'progress'; id: number; paths: number }
  | { type: 'done'; id: number; start: number; count: number; data: Float64Array }
  | { type: 'error'; id: number; message: string; stack?: string; inputError?: boolean };

const port = parentPort;
if (port) {
  port.on('message', async (req: ChunkRequest) => {
    try {
      const b = await runPaths(req.job, req.start, req.end, {
        onPaths: (paths) => port.postMessage({ type: 'progress', id: req.id, paths }),
      });
      const reply: WorkerReply = { type: 'done', id: req.id, start: b.start, count: b.count, data: b.data };
      port.postMessage(reply, [b.data.buffer as ArrayBuffer]);
    } catch (err) {
      const e = err instanceof Error ? err : new Error(String(err));
      const reply: WorkerReply = {
        type: 'error',
        id: req.id,
        message: e instanceof BacktestInputError ? e.shortMessage : e.message,
        ...(e.stack ? { stack: e.stack } : {}),
        ...(e instanceof BacktestInputError ? { inputError: true } : {}),
      };
      port.postMessage(reply);
    }
  });
}
