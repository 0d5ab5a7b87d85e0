import type { InfluxHttp } from './http';
import { rows } from './http';
import { lineTag } from './influxql';

/**
 * Drill markers: points of measurement `lifeboat_drill_markers` with tag
 * `nonce` and integer field `seq`, in the database's default retention
 * policy. A point is measurement + tags + timestamp, so writing the same
 * point twice keeps one: seeding is idempotent as long as a retry uses the
 * same timestamps, which it takes from the markers already there.
 */
export const MARKER_MEASUREMENT = 'lifeboat_drill_markers';


const SELECT = `SELECT "seq" FROM "${MARKER_MEASUREMENT}" WHERE "nonce" = $nonce`;

export async function seed(h: InfluxHttp, db: string, count: number, nonce: string, signal: AbortSignal): Promise<void> {
  const what = `seeding drill markers in ${db}`;
  // Millisecond timestamps, one apart: exact in JSON numbers, unlike nanoseconds.
  const found = rows(await h.query({ q: SELECT, db, params: { nonce }, epoch: 'ms', what, signal }));
  // The first attempt's timestamps, if it wrote any; else now (inside every retention policy's window).
  const first = found[0] as { time: number; seq: number } | undefined;
  const base = first ? Number(first.time) - Number(first.seq) : Date.now();
  const tag = lineTag(nonce);
  const lines: string[] = [];
  for (let seq = 1; seq <= count; seq++) lines.push(`${MARKER_MEASUREMENT},nonce=${tag} seq=${seq}i ${base + seq}`);
  await h.write(db, `${lines.join('\n')}\n`, what, signal);
}

export async function count(h: InfluxHttp, db: string, nonce: string, signal: AbortSignal): Promise<number[]> {
  const what = `counting drill markers in ${db}`;
  try {
    return rows(await h.query({ q: SELECT, db, params: { nonce }, what, signal })).map((r) => Number(r.seq));
  } catch (err) {
    // No database, no markers: the drill reports them as missing.
    if ((err as { type?: string }).type === 'DatabaseNotFound') return [];
    throw err;
  }
}
