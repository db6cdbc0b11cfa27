import { createHash } from 'node:crypto';

/**
 * A deterministic id from its parts: the same plan and leg always give the same intent id, so a
 * replanned or re-queued leg is recognised as the same intent (BullMQ job id dedup, venue client ids).
 * Result: `<prefix>_<24 hex>`, safe as a BullMQ job id (no `:`, not all digits).
 */
export function deterministicId(prefix: string, ...parts: readonly (string | number)[]): string {
  if (!/^[a-z][a-z0-9]{0,15}$/.test(prefix)) throw new RangeError(`deterministicId: bad prefix "${prefix}"`);
  const h = createHash('sha256');
  for (const p of parts) {
    const s = String(p);
    h.update(`${s.length}:${s};`);
  }
  return `${prefix}_${h.digest('hex').slice(0, 24)}`;
}
