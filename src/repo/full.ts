import { LifeboatError } from '../errors';

/**
 * A full repository is permanent: retrying for minutes will not make room.
 * The message names the object, how far it got, and what to do.
 */
export function repositoryFull(url: string, written: number, why: string): LifeboatError {
  const mib = (n: number) => `${(n / 1048576).toFixed(1)} MiB`;
  return new LifeboatError(
    'RepositoryFull',
    `the repository is full: writing ${url} failed after ${mib(written)} (${why}); it needs at least that much free space and more for the rest of the artifact. Free space there (lifeboat prune), or grow the storage, then back up again`,
  );
}
