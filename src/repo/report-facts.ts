import type { Config } from '../config';
import { MANIFEST } from '../domain/layout';
import type { Manifest } from '../domain/manifest';
import { validateBackupId } from '../domain/names';
import type { DrillRecord } from '../domain/plan';
import { buildReport, type NewestBackup, type Report } from '../domain/rpo';
import { messageOf } from '../errors';
import { listBackups, readDrillRecords, readManifest, type Trust } from './catalog';
import { openRepository } from './index';
import type { Repository } from './types';

/**
 * What the repository proves about each target, for `lifeboat report` and the
 * worker's metrics alike: the newest complete backup, the drill records and,
 * for the report's plots, every backup's timings.
 */

/** Backup ids with a folder under the target, newest first (names that are not backup ids are skipped). */
async function backupFolders(repo: Repository, target: string): Promise<string[]> {
  const ids: string[] = [];
  for (const e of await repo.list(target)) {
    if (!e.dir) continue;
    try {
      ids.push(validateBackupId(e.name));
    } catch {
      // objects/, or not lifeboat's
    }
  }
  return ids.sort().reverse();
}

/** Which manifests count: where signing is configured only signed ones, so a forged backup cannot make the RPO look better. */
export function reportTrust(config: Config): Trust {
  const publicKeys = config.signing?.publicKeys ?? [];
  return { publicKeys, allowUnsigned: publicKeys.length === 0 };
}

/**
 * The newest backup of a target whose manifest reads (and is trusted),
 * walking back from the newest folder and stopping at the first: a manifest
 * that does not read is skipped with a warning (the report is what an
 * operator looks at when things are already wrong).
 */
export async function newestBackup(repo: Repository, target: string, warnings: string[], trust: Trust): Promise<NewestBackup | undefined> {
  for (const backupId of await backupFolders(repo, target)) {
    const files = await repo.list(`${target}/${backupId}`);
    if (!files.some((f) => f.name === MANIFEST && !f.dir)) continue; // interrupted or still running
    try {
      const m = await readManifest(repo, target, backupId, trust);
      return { backupId, finishedAt: m.finishedAt };
    } catch (err) {
      warnings.push(`${target}: backup ${backupId} skipped: ${messageOf(err)}`);
    }
  }
  return undefined;
}

export interface GatheredReport {
  report: Report;
  repository: string;
  warnings: string[];
  drills: DrillRecord[];
}

/** The per-target facts of the backups and drills (a `pitr:` target's WAL-based RPO is added by `lifeboat report`). */
export async function gatherFacts(config: Config, last: number, now = new Date(), repo?: Repository): Promise<GatheredReport> {
  const r = repo ?? (await openRepository(config));
  const targets = [...config.targets.values()].map((t) => ({ name: t.name, kind: t.kind }));
  const warnings: string[] = [];
  const trust = reportTrust(config);
  const newest = new Map<string, NewestBackup>();
  for (const t of targets) {
    const b = await newestBackup(r, t.name, warnings, trust);
    if (b) newest.set(t.name, b);
  }
  const drills = await readDrillRecords(r, last);
  return { report: buildReport({ now, targets, newest, drills, last }), repository: r.url(''), warnings, drills };
}

/** One complete backup as the report's plots draw it. */
export interface BackupPoint {
  target: string;
  backupId: string;
  startedAt: string;
  finishedAt: string;
  seconds: number;
  bytes: number;
}

/** Every complete backup of the targets, oldest first; manifests that do not read are warnings. */
export async function backupHistory(repo: Repository, targets: string[], warnings: string[], trust: Trust): Promise<BackupPoint[]> {
  const out: BackupPoint[] = [];
  for (const b of await listBackups(repo, targets)) {
    let m: Manifest;
    try {
      m = await readManifest(repo, b.target, b.backupId, trust);
    } catch (err) {
      warnings.push(`${b.target}: backup ${b.backupId} skipped: ${messageOf(err)}`);
      continue;
    }
    const seconds = Math.max(0, (Date.parse(m.finishedAt) - Date.parse(m.startedAt)) / 1000);
    out.push({ target: b.target, backupId: b.backupId, startedAt: m.startedAt, finishedAt: m.finishedAt, seconds, bytes: m.artifacts.reduce((s, a) => s + a.bytes, 0) });
  }
  return out.sort((a, b) => a.finishedAt.localeCompare(b.finishedAt));
}
