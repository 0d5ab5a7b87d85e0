import type { PitrCatalog } from '../../../domain/pitr';
import { validateName } from '../../../domain/names';
import type { Repository } from '../../../repo/types';

/**
 * lifeboat keeps what `pgbackrest info` said of a target's stanza in its own
 * repository, beside the target's logical backups, so `lifeboat ls` and
 * `report` show the PITR backups and the window from any machine, without
 * pgBackRest or the database. Refreshed after every PITR backup, expire and drill.
 */
export function pitrCatalogKey(target: string): string {
  return `${validateName('target', target)}/pitr.json`;
}

export async function writePitrCatalog(repo: Repository, c: PitrCatalog): Promise<void> {
  await repo.putText(pitrCatalogKey(c.target), `${JSON.stringify(c, null, 2)}\n`);
}

export async function readPitrCatalog(repo: Repository, target: string): Promise<PitrCatalog | undefined> {
  const key = pitrCatalogKey(target);
  if (!(await repo.exists(key))) return undefined;
  return JSON.parse(await repo.getText(key)) as PitrCatalog;
}
