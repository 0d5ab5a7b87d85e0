import type { StoreContext } from '../types';
import type { ArchiveFacts } from './archive';
import type { InfluxHttp } from './http';
import { quoteIdent } from './influxql';

/**
 * What `influxd restore` does not get right by itself, per the target name:
 *
 * - continuous queries are not restored at all: in place, lifeboat recreates
 *   them from the backup's meta store; in a copy under another name it does
 *   not, since their statements name the original database (`ON db`,
 *   `INTO db.rp.m`) and would act on it.
 * - subscriptions come back with their retention policies: in place they stay;
 *   a copy under another name has them dropped, so that nothing written into
 *   the copy is forwarded to the original's subscribers (e.g. Kapacitor).
 */
export async function afterRestore(ctx: StoreContext, h: InfluxHttp, db: string, into: string, facts: ArchiveFacts, target: string): Promise<void> {
  const cqs = facts.meta.databases.find((d) => d.name === db)?.continuousQueries ?? [];
  if (into === db) {
    for (const cq of cqs) {
      if (!/^CREATE CONTINUOUS QUERY /i.test(cq.query)) {
        ctx.log.warn(`continuous query ${cq.name} of database ${db} was not recreated: its stored statement is not a CREATE CONTINUOUS QUERY`, { target });
        continue;
      }
      await h.query({ q: cq.query, what: `recreating continuous query ${cq.name} in ${into}`, signal: ctx.signal });
    }
    return;
  }
  if (cqs.length) {
    ctx.log.warn(`continuous queries ${cqs.map((c) => c.name).join(', ')} of database ${db} were not created in its copy ${into}: their statements name ${db}`, { target });
  }
  const subs = (await h.query({ q: 'SHOW SUBSCRIPTIONS', what: `listing the subscriptions of ${into}`, signal: ctx.signal })).find((s) => s.name === into);
  for (const row of subs?.values ?? []) {
    const [rp, name] = [String(row[subs!.columns.indexOf('retention_policy')]), String(row[subs!.columns.indexOf('name')])];
    await h.query({ q: `DROP SUBSCRIPTION ${quoteIdent(name)} ON ${quoteIdent(into)}.${quoteIdent(rp)}`, what: `dropping subscription ${name} of the copy ${into}`, signal: ctx.signal });
    ctx.log.info(`dropped subscription ${name} (${rp}) that came with the copy ${into} of ${db}`, { target });
  }
}
