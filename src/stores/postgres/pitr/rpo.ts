import { targetOf, type Config } from '../../../config';
import { walSegment, type ArchiverStatus } from '../../../domain/pitr';
import type { Report } from '../../../domain/rpo';
import { LifeboatError, messageOf } from '../../../errors';
import type { Repository } from '../../../repo';
import { parsePostgresSettings } from '../settings';
import { readPitrCatalog } from './catalog';
import { PitrEngine, type PitrSpec } from './index';
import { archiverStatus } from './server';

/**
 * Which targets have point-in-time recovery, their PITR spec, and their RPO
 * (the age of the last WAL segment in the repository): shared by the CLI
 * (`report`, `ls`) and the worker's metrics, so both tell the same RPO.
 */

/** The PITR spec of a target: its postgres settings with a `pitr:` section, and the config's repository and retention. */
export function pitrSpec(config: Config, target: string): PitrSpec {
  const t = targetOf(config, target);
  if (t.kind !== 'postgres') throw new LifeboatError('ConfigError', `target '${target}' is a ${t.kind} target: point-in-time recovery is for postgres targets`);
  const pg = parsePostgresSettings(config.file, t);
  if (!pg.pitr) throw new LifeboatError('ConfigError', `target '${target}' in ${config.file} has no 'pitr:' section; add one to back it up with pgBackRest (docs/pitr.md)`);
  return { target, pg, pitr: pg.pitr, repository: config.repository, retention: config.retention };
}

/** Targets with a `pitr:` section, of those named (all when none are). */
export function pitrTargets(config: Config, names: string[] = []): string[] {
  const all = [...config.targets.values()].filter((t) => t.kind === 'postgres' && t.settings.pitr !== undefined).map((t) => t.name);
  return names.length ? names.filter((n) => all.includes(n)) : all;
}

/** How long the server's archiver may take to answer: a server that drops packets must not hold up a report or a metrics refresh. */
const ASK_SECONDS = 10;

function answerWithin<T>(seconds: number, who: string, p: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new LifeboatError('Unreachable', `${who} did not answer within ${seconds}s`, false)), seconds * 1000)));
  return Promise.race([p, late]).finally(() => clearTimeout(timer));
}

/** Whether WAL segment `wal` is in the target's pgBackRest archive, read through lifeboat's own repository client. */
async function inArchive(repo: Repository, target: string, wal: string): Promise<boolean> {
  const base = `pitr/${target}/archive/${target}`;
  const ids = (await repo.list(base)).filter((e) => e.dir && /^\d+-\d+$/.test(e.name)).map((e) => e.name);
  ids.sort((a, b) => Number(a.split('-')[1]) - Number(b.split('-')[1]));
  const id = ids.at(-1);
  if (!id) return false;
  return (await repo.list(`${base}/${id}/${wal.slice(0, 16)}`)).some((e) => !e.dir && e.name.startsWith(`${wal}-`));
}

/**
 * For PITR targets, the RPO is the age of the last archived WAL segment
 * (pg_stat_archiver.last_archived_time) that the repository really holds,
 * not the age of the last nightly backup. When the server cannot be asked,
 * the catalog's last reading is used, with a warning.
 */
export async function applyPitrRpo(config: Config, repo: Repository, report: Report, warnings: string[]): Promise<void> {
  const now = new Date(report.generatedAt).getTime();
  for (const t of report.targets) {
    if (!pitrTargets(config, [t.target]).length) continue;
    // No PITR backup in this repository yet: the logical backups' RPO is the truth.
    const catalog = await readPitrCatalog(repo, t.target).catch(() => undefined);
    if (!catalog) continue;
    let archiver: ArchiverStatus | undefined;
    let source: 'server' | 'catalog' = 'server';
    const engine = new PitrEngine(pitrSpec(config, t.target));
    try {
      archiver = await answerWithin(ASK_SECONDS, `the server ${engine.conn.server}`, archiverStatus(engine.conn, engine.spec.pg.maintenanceDatabase, undefined));
    } catch (err) {
      archiver = catalog.archiver;
      source = 'catalog';
      warnings.push(`${t.target}: the server's archiver could not be read (${messageOf(err)}); RPO from the last catalog refresh`);
    }
    if (source === 'server' && archiver) {
      const seg = archiver.lastArchivedWal ? walSegment(archiver.lastArchivedWal) : undefined;
      archiver.inRepository = seg
        ? await inArchive(repo, t.target, seg).catch((err: unknown) => {
            warnings.push(`${t.target}: the WAL archive in the repository could not be listed (${messageOf(err)})`);
            return false;
          })
        : false;
    }
    const rpo = archiver?.inRepository && archiver.lastArchivedTime ? Math.max(0, (now - Date.parse(archiver.lastArchivedTime)) / 1000) : null;
    if (archiver?.lastArchivedWal && !archiver.inRepository) warnings.push(`${t.target}: the last archived WAL ${archiver.lastArchivedWal} is not in the repository; RPO unknown`);
    if (archiver?.lastFailedTime && (!archiver.lastArchivedTime || archiver.lastFailedTime > archiver.lastArchivedTime)) {
      warnings.push(`${t.target}: archiving is failing (last failure ${archiver.lastFailedWal} at ${archiver.lastFailedTime}); see the server log`);
    }
    Object.assign(t, { rpoSeconds: rpo ?? t.rpoSeconds, rpoFrom: rpo !== null ? 'wal-archive' : 'backup', pitr: { source, ...archiver } });
  }
}
