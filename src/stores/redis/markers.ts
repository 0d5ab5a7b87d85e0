import type { Redis } from 'ioredis';

/**
 * Drill markers: string keys `lifeboat:drill:<nonce>:<seq>` holding
 * `<nonce>:<seq>` in the drill database; every third one has a TTL of hours,
 * so a drill also proves that expiries survive the round trip. A marker
 * counts only if its value is right and its TTL is as seeded: one that lost
 * its TTL (or gained one) did not come back whole.
 */
export const MARKER_PREFIX = 'lifeboat:drill:';
export const MARKER_TTL_SECONDS = 6 * 3600;

export function markerKey(nonce: string, seq: number): string {
  return `${MARKER_PREFIX}${nonce}:${seq}`;
}

export function hasTtl(seq: number): boolean {
  return seq % 3 === 0;
}

/** SCAN's MATCH is a glob: a nonce is matched literally. */
function globEscape(s: string): string {
  return s.replace(/[*?[\]\\]/g, (c) => `\\${c}`);
}

/** Writes markers 1..count (again: the same keys and values, TTLs renewed). */
export async function seedMarkers(c: Redis, db: number, count: number, nonce: string): Promise<void> {
  await c.select(db);
  const p = c.pipeline();
  for (let seq = 1; seq <= count; seq++) {
    if (hasTtl(seq)) p.set(markerKey(nonce, seq), `${nonce}:${seq}`, 'EX', MARKER_TTL_SECONDS);
    else p.set(markerKey(nonce, seq), `${nonce}:${seq}`);
  }
  for (const [err] of (await p.exec()) ?? []) if (err) throw err;
}

/** The sequence numbers of the markers with `nonce` in `db` that came back whole (value and TTL). */
export async function countMarkers(c: Redis, db: number, nonce: string): Promise<number[]> {
  await c.select(db);
  const keys: string[] = [];
  let cursor = '0';
  do {
    const [next, batch] = await c.scan(cursor, 'MATCH', `${globEscape(MARKER_PREFIX + nonce)}:*`, 'COUNT', 1000);
    keys.push(...batch);
    cursor = next;
  } while (cursor !== '0');
  if (keys.length === 0) return [];
  const p = c.pipeline();
  for (const k of keys) p.get(k).pttl(k);
  const replies = (await p.exec()) ?? [];
  const found: number[] = [];
  keys.forEach((k, i) => {
    const seq = Number(k.slice(MARKER_PREFIX.length + nonce.length + 1));
    const [e1, value] = replies[2 * i]!;
    const [e2, pttl] = replies[2 * i + 1]!;
    if (e1 || e2 || !Number.isInteger(seq)) return;
    const ttlOk = hasTtl(seq) ? (pttl as number) > 0 : pttl === -1;
    if (value === `${nonce}:${seq}` && ttlOk) found.push(seq);
  });
  return found.sort((a, b) => a - b);
}
