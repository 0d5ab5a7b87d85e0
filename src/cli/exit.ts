import { LifeboatError } from '../errors';

/**
 * lifeboat's exit statuses (docs/cli.md), like restic's: a script can tell a
 * failed run from a typo from a missing backup from a busy target.
 */
export const EXIT = {
  ok: 0,
  /** The run (backup, restore, drill, verify, prune, check) failed. */
  failed: 1,
  /** Bad arguments or config. */
  usage: 2,
  /** A backup, artifact, run or schedule that does not exist. */
  notFound: 3,
  /** Another run holds the target (or the same restore already runs). */
  busy: 4,
  /** `report --max-rpo`: a target's newest backup is older than allowed. */
  rpoExceeded: 5,
  /** No worker polls the task queue: nothing was started. */
  noWorker: 6,
  /** The Temporal server cannot be reached. */
  unreachable: 7,
  /** Ctrl-C: the CLI stopped waiting; the run goes on (or, with --with-worker, waits for a worker). */
  interrupted: 130,
  /** SIGTERM, same as Ctrl-C. */
  terminated: 143,
} as const;

export type ExitCode = (typeof EXIT)[keyof typeof EXIT];

const BY_TYPE: Record<string, ExitCode> = {
  ConfigError: EXIT.usage,
  InvalidName: EXIT.usage,
  UsageError: EXIT.usage,
  BackupNotFound: EXIT.notFound,
  ArtifactNotFound: EXIT.notFound,
  ScheduleNotFound: EXIT.notFound,
  WorkflowNotFound: EXIT.notFound,
  TargetBusy: EXIT.busy,
  NoWorker: EXIT.noWorker,
  Unreachable: EXIT.unreachable,
};

/** The exit status for an error the CLI itself caught (not a failed run). */
export function exitFor(err: unknown): ExitCode {
  const type = err instanceof LifeboatError ? err.type : (err as { type?: string })?.type;
  return (type ? BY_TYPE[type] : undefined) ?? EXIT.failed;
}

/** The exit status for a run that failed with `type`: busy and not-found keep their codes. */
export function exitForRun(type: string): ExitCode {
  return type === 'TargetBusy' ? EXIT.busy : type === 'BackupNotFound' || type === 'ArtifactNotFound' ? EXIT.notFound : EXIT.failed;
}
