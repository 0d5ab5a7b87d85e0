import type { Config } from '../config';
import { openRepository, type Repository } from '../repo';
import { checkRepository, type BackupCheck, type References } from '../repo/check';
import { POOL_DIR, REFS_FILE, poolPath, readRefs } from '../stores/bucket/pool';
import { bytes, type Output } from './output';

/**
 * `lifeboat check [--read-data]`: is everything the repository's manifests
 * promise still there, as recorded? Needs no key and touches nothing.
 * Exit 0 when clean, 1 when any problem was found.
 */

/** A bucket target's backup refers to pool objects (src/stores/bucket/pool.ts); each pool is listed once. */
function bucketPool(): References {
  const pools = new Map<string, Promise<Map<string, number | undefined>>>();
  const listPool = (repo: Repository, target: string) => {
    if (!pools.has(target)) pools.set(target, repo.list(`${target}/${POOL_DIR}`).then((es) => new Map(es.filter((e) => !e.dir).map((e) => [e.name, e.bytes]))));
    return pools.get(target)!;
  };
  return async (repo, target, backupId, files) => {
    if (!files.some((f) => f.name === REFS_FILE && !f.dir)) return [];
    const listed = await listPool(repo, target);
    return [...(await readRefs(repo, target, backupId))].map(([pool, s]) => ({ key: poolPath(target, pool), bytes: s.stored, sha256: s.sha256, listed: listed.get(pool) }));
  };
}

function line(b: BackupCheck, readData: boolean): string {
  if (!b.complete) return `-      ${b.target}/${b.backupId}: no manifest (an interrupted or running backup; prune removes old ones)`;
  const what = `${b.artifacts} artifact(s)${b.referenced ? `, ${b.referenced} pool object(s)` : ''}, ${bytes(b.bytes)}`;
  return `${b.problems.length ? 'FAILED' : readData ? 'ok+data' : 'ok    '} ${b.target}/${b.backupId}: ${what}`;
}

export async function check(config: Config, out: Output, o: { readData?: boolean }): Promise<0 | 1> {
  const repo = await openRepository(config);
  const readData = o.readData === true;
  out.say(`checking ${repo.url('')}${readData ? ' (reading every byte)' : ''}`);
  const r = await checkRepository(repo, {
    readData,
    publicKeys: config.signing?.publicKeys ?? [],
    references: bucketPool(),
    onBackup: (b) => {
      if (out.json) return;
      process.stdout.write(`${line(b, readData)}\n`);
      for (const p of b.problems) process.stdout.write(`         ${p}\n`);
    },
  });
  const failed = r.backups.filter((b) => b.problems.length);
  const complete = r.backups.filter((b) => b.complete);
  const problems = failed.reduce((n, b) => n + b.problems.length, 0) + r.problems.length;
  const summary =
    problems === 0
      ? `no problems: ${complete.length} backup(s)${readData ? `, ${bytes(r.bytesRead)} read and hashed again` : ''}`
      : `${problems} problem(s) in ${failed.length} of ${complete.length} backup(s)${r.problems.length ? ` and ${r.problems.length} drill record(s)` : ''}`;
  out.result(
    {
      ok: problems === 0,
      repository: repo.url(''),
      readData,
      bytesRead: r.bytesRead,
      backups: r.backups,
      problems: r.problems,
    },
    [...r.problems, summary],
  );
  return problems === 0 ? 0 : 1;
}
