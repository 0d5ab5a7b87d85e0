/** Drill markers: how many each kind seeds (the runbook's numbers), and the check. */
export const MARKERS_PER_KIND: Record<string, number> = { postgres: 137, clickhouse: 251, bucket: 64, redis: 97, influxdb: 113, vault: 61 };

export interface MarkerResult {
  expected: number;
  found: number;
  /** Sequence numbers that did not come back (first 20). */
  missing: number[];
  /** Rows with the nonce beyond 1..expected, e.g. duplicates. */
  unexpected: number;
}

export function checkMarkers(expected: number, foundSeqs: readonly number[]): MarkerResult {
  const seen = new Set<number>();
  let unexpected = 0;
  for (const s of foundSeqs) {
    if (s >= 1 && s <= expected && !seen.has(s)) seen.add(s);
    else unexpected++;
  }
  const missing: number[] = [];
  for (let s = 1; s <= expected && missing.length < 20; s++) if (!seen.has(s)) missing.push(s);
  return { expected, found: seen.size, missing, unexpected };
}

export function markersOk(r: MarkerResult): boolean {
  return r.found === r.expected && r.unexpected === 0;
}

export function describeMarkers(target: string, r: MarkerResult): string {
  if (markersOk(r)) return `${target}: ${r.found}/${r.expected} markers`;
  const parts = [`${target}: ${r.found}/${r.expected} markers came back`];
  if (r.missing.length) parts.push(`missing ${r.missing.join(', ')}${r.expected - r.found > r.missing.length ? ', …' : ''}`);
  if (r.unexpected) parts.push(`${r.unexpected} unexpected rows`);
  return parts.join('; ');
}
