// Worker threads start without the parent's TypeScript loader on Node 20: register tsx here, then
// load the TypeScript worker module given by the parent.
import { workerData } from 'node:worker_threads';
import { register } from 'tsx/esm/api';

register();
await import(workerData.entry);
