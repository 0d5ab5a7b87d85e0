import { z } from 'zod';
import { bool, httpUrl, oneOf, path, secretRef, strict, text, wholeNumber, type SchemaContext } from '../../../config/fields';
import { hookSchema } from '../../../config/hooks';
import { isCron, PITR_DEFAULTS } from '../../../domain/schedules';

const cronOrOff = () =>
  z
    .union([z.literal(false), text()])
    .transform((v, ctx) => {
      if (v === false || v === 'off') return false as const;
      if (!isCron(v)) {
        ctx.addIssue({ code: 'custom', message: 'must be a cron expression like "0 1 * * 0" (minute hour day-of-month month day-of-week), or false for none' });
        return z.NEVER;
      }
      return v.trim().replace(/\s+/g, ' ');
    })
    .meta({ description: 'a cron expression ("0 1 * * 0"), or false for no schedule' });

/**
 * A postgres target's `pitr:` section: point-in-time recovery with pgBackRest
 * beside the logical dumps (docs/pitr.md). lifeboat writes the pgBackRest
 * configuration from it; the stanza is the target's name and the pgBackRest
 * repository is the config's repository under `<prefix>/pitr/<target>/`.
 */
export const pitrSettings = (c: SchemaContext) =>
  strict({
    dataDir: path(c).meta({ description: "the server's data directory (pgBackRest pg1-path); the worker serving this target runs beside it" }),
    socketDir: path(c).default('/var/run/postgresql').meta({ description: "folder of the server's Unix socket (pg1-socket-path); pgBackRest connects through it" }),
    configDir: path(c).optional().meta({
      description: 'where lifeboat writes pgbackrest.conf (mode 600, owned by the data directory owner), the spool, logs and locks; default /var/lib/lifeboat/pitr/<target>',
    }),
    cipherPassphrase: secretRef(c).meta({ description: "pgBackRest's repository passphrase (repo1-cipher-pass, aes-256-cbc); keep a copy off the machine" }),
    s3Endpoint: httpUrl()
      .optional()
      .meta({ description: "an https URL for the repository's S3 endpoint as pgBackRest reaches it (pgBackRest speaks only https); default: the repository's endpoint" }),
    caFile: path(c).optional().meta({ description: 'CA certificate pgBackRest trusts for the S3 endpoint (repo1-storage-ca-file)' }),
    verifyTls: bool().default(true).meta({ description: "verify the S3 endpoint's certificate (repo1-storage-verify-tls)" }),
    processMax: wholeNumber(1, 64).default(1).meta({ description: 'pgBackRest process-max: parallel compression and transfer' }),
    compress: oneOf(['zst', 'lz4', 'gz', 'none']).default('zst').meta({ description: 'pgBackRest compress-type' }),
    archiveAsync: bool().default(true).meta({ description: 'asynchronous archive-push (archive-async, with a spool folder)' }),
    retention: strict({
      full: wholeNumber(1, 9999).optional().meta({ description: 'full backups kept (repo1-retention-full); default: retention.weekly, at least 1' }),
      diff: wholeNumber(1, 9999).optional().meta({ description: 'differential backups kept (repo1-retention-diff); default: retention.daily, at least 1' }),
    })
      .prefault({})
      .meta({ description: "pgBackRest's retention; by default derived from lifeboat's retention settings" }),
    schedules: strict({
      full: cronOrOff().default(PITR_DEFAULTS.full as string).meta({ description: 'weekly full backup (default Sunday 01:00)' }),
      diff: cronOrOff().default(PITR_DEFAULTS.diff as string).meta({ description: 'daily differential backup (default Monday to Saturday 01:00)' }),
      drill: cronOrOff().default(PITR_DEFAULTS.drill as string).meta({ description: 'nightly PITR drill into a scratch copy (default 04:30)' }),
    }).prefault({}),
    stopServer: z.array(hookSchema(c)).optional().meta({ description: 'stops the server before a restore into dataDir; default: pg_ctl stop -m fast as the data directory owner' }),
    startServer: z.array(hookSchema(c)).optional().meta({ description: 'starts it again, on every path once stopped; default: pg_ctl start' }),
    scratchDir: path(c).optional().meta({ description: 'where the PITR drill restores its scratch copy (room for one copy of the database); default <configDir>/scratch' }),
    lockWaitSeconds: wholeNumber(0, 7 * 24 * 3600).default(3600).meta({ description: "how long a backup waits while another pgBackRest run holds the stanza's lock" }),
    archiveWaitSeconds: wholeNumber(1, 24 * 3600).default(120).meta({ description: 'how long the drill and the restore plan wait for a switched WAL segment to be archived' }),
  });

export type PitrSettings = z.output<ReturnType<typeof pitrSettings>>;

export function defaultConfigDir(target: string): string {
  return `/var/lib/lifeboat/pitr/${target}`;
}
