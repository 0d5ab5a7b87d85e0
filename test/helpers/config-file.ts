import { readFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parse, stringify } from 'yaml';
import type { TestEnv } from './env';

/**
 * Writes a config file for a process the test starts (the CLI, a worker):
 * the stack's own file with this test's task queue, repository prefix and
 * databases, and only the `app-pg` target.
 */
export async function writeConfigFile(dir: string, env: TestEnv, extra: Record<string, unknown> = {}): Promise<string> {
  const base = parse(readFileSync(process.env.LIFEBOAT_CONFIG!, 'utf8')) as Record<string, Record<string, unknown>>;
  const repo = env.config.repository;
  const doc = {
    ...base,
    repository: { ...base.repository, ...(repo.kind === 's3' ? { prefix: repo.prefix } : {}) },
    targets: { 'app-pg': { ...(base.targets!['app-pg'] as object), databases: env.databases } },
    schedules: { ...(base.schedules ?? {}), idPrefix: env.config.schedules!.idPrefix },
    ...extra,
    // Extra temporal settings (e.g. heartbeatTimeoutSeconds) add to the stack's.
    temporal: { ...base.temporal, taskQueue: env.taskQueue, ...(extra.temporal as object) },
  };
  const file = join(dir, 'lifeboat.yaml');
  await writeFile(file, stringify(doc));
  return file;
}
