import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import { type EngineJob, PATH_FIELDS, type PathBatch, runPaths } from './engine.ts';
import { BacktestInputError, BacktestWorkerError } from './errors.ts';
import type { ChunkRequest, WorkerReply } from './worker.ts';

export interface RunOptions {
  /**
   * Worker threads. 0 or 1 runs in the calling thread.
   * @defaultValue the machine's available parallelism
   */
  workers?: number;
  /** Called with the number of paths finished since the last call. */
  onPaths?: (paths: number) => void;
}

/** Worker threads that run path chunks; reuse one pool for several jobs (policies) of a run. */
export interface WorkerPool {
  readonly size: number;
  run(job: EngineJob, onPaths?: (paths: number) => void): Promise<PathBatch>;
  close(): Promise<void>;
}

interface Pending {
  resolve: (b: PathBatch) => void;
  reject: (e: Error) => void;
  onPaths: ((n: number) => void) | undefined;
}

export function defaultWorkerCount(): number {
  return Math.max(1, availableParallelism());
}

/** Starts `size` worker threads (TypeScript loaded through tsx, so it works under tsx, vitest and the CLI). */
export function createWorkerPool(size = defaultWorkerCount()): WorkerPool {
  const boot = new URL('./worker-boot.mjs', import.meta.url);
  const entry = new URL('./worker.ts', import.meta.url).href;
  const workers = Array.from({ length: size }, () => new Worker(boot, { workerData: { entry } }));
  const pending = new Map<number, Pending>();
  let nextId = 1;
  let fatal: Error | null = null;
  const idle: Worker[] = [...workers];
  const queue: ChunkRequest[] = [];

  const pump = (): void => {
    while (idle.length > 0 && queue.length > 0) {
      const w = idle.pop() as Worker;
      const req = queue.shift() as ChunkRequest;
      w.postMessage(req);
    }
  };
  for (const w of workers) {
    w.on('message', (m: WorkerReply) => {
      const p = pending.get(m.id);
      if (!p) return;
      if (m.type === 'progress') {
        p.onPaths?.(m.paths);
        return;
      }
      pending.delete(m.id);
      idle.push(w);
      pump();
      if (m.type === 'done') p.resolve({ start: m.start, count: m.count, data: m.data });
      // An input the engine refused stays that error (the caller tells the user what to change).
      else if (m.inputError) p.reject(new BacktestInputError(m.message));
      else p.reject(new BacktestWorkerError(m.message, m.stack));
    });
    w.on('error', (err) => {
      // A crashed thread leaves the pool unusable: fail everything still waiting.
      fatal = err;
      for (const p of pending.values()) p.reject(new BacktestWorkerError(err.message, err.stack));
      pending.clear();
    });
  }
  const runChunk = (
    job: EngineJob,
    start: number,
    end: number,
    onPaths?: (n: number) => void,
  ): Promise<PathBatch> =>
    new Promise((resolve, reject) => {
      if (fatal) {
        reject(new BacktestWorkerError(fatal.message));
        return;
      }
      const id = nextId++;
      pending.set(id, { resolve, reject, onPaths });
      queue.push({ id, job, start, end });
      pump();
    });
  return {
    size,
    async run(job, onPaths) {
      // Several chunks per worker balance the load and keep the progress bar moving.
      const chunk = Math.max(16, Math.ceil(job.paths / (size * 8)));
      const parts: Promise<PathBatch>[] = [];
      for (let s = 0; s < job.paths; s += chunk)
        parts.push(runChunk(job, s, Math.min(job.paths, s + chunk), onPaths));
      return mergeBatches(await Promise.all(parts), job.paths);
    },
    async close() {
      await Promise.all(workers.map((w) => w.terminate()));
    },
  };
}

/** Joins chunk results in path order (the result does not depend on how paths were split). */
export function mergeBatches(parts: readonly PathBatch[], paths: number): PathBatch {
  const nf = PATH_FIELDS.length;
  const data = new Float64Array(nf * paths);
  for (const b of parts) {
    for (let f = 0; f < nf; f++)
      data.set(b.data.subarray(f * b.count, (f + 1) * b.count), f * paths + b.start);
  }
  return { start: 0, count: paths, data };
}

/** Runs every path of a job, in worker threads when `workers > 1`, else in this thread. */
export async function runJob(job: EngineJob, opts: RunOptions = {}): Promise<PathBatch> {
  const n = opts.workers ?? defaultWorkerCount();
  if (n <= 1) return runPaths(job, 0, job.paths, opts.onPaths ? { onPaths: opts.onPaths } : {});
  const pool = createWorkerPool(n);
  try {
    return await pool.run(job, opts.onPaths);
  } finally {
    await pool.close();
  }
}
