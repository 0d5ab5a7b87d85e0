import type { Config } from '../config';
import { LocalRepository } from './local';
import { S3Repository, s3Client } from './s3';
import type { Repository } from './types';

export * from './types';
export { HashTap } from './hash-tap';

export async function openRepository(config: Config): Promise<Repository> {
  const r = config.repository;
  if (r.kind === 'local') return new LocalRepository(r.path);
  return new S3Repository(await s3Client(r), r);
}
