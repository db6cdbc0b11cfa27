import { createConnection } from 'node:net';

/** True when something listens on 127.0.0.1:port (a Redis or Postgres the machine runs). */
export function listening(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createConnection({ host: '127.0.0.1', port });
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}
