/**
 * lifeboat's error vocabulary. Every failure that crosses a layer carries a
 * stable `type` string: activities turn it into an ApplicationFailure of the
 * same type, and workflows and the CLI branch on that string (never on
 * `instanceof`, which does not survive the Temporal boundary).
 */

/** Failures that retrying cannot fix: bad input, missing objects, auth, tampering. */
export const PERMANENT_TYPES = [
  'ConfigError',
  'InvalidName',
  'BackupNotFound',
  'ArtifactNotFound',
  'ChecksumMismatch',
  'ArtifactUnreadable',
  'CheckFailed',
  'TargetBusy',
  'NotApproved',
  'ManifestInvalid',
  'ManifestUnsigned',
  'SignatureInvalid',
  'ArtifactChanged',
  'RepositoryFull',
  'PlanChanged',
  'WritersNotStarted',
  'AuthFailed',
  'MarkersMissing',
  'ToolTooOld',
  'AgeNoMatchingIdentity',
  'AgeAuthFailed',
  'AgeTruncated',
  'AgeNotEncrypted',
  'AgeBadHeader',
  'AgeBadKey',
] as const;

export type PermanentType = (typeof PERMANENT_TYPES)[number];

export class LifeboatError extends Error {
  constructor(
    readonly type: string,
    message: string,
    readonly permanent: boolean = (PERMANENT_TYPES as readonly string[]).includes(type),
  ) {
    super(message);
    this.name = type;
  }
}

export function isPermanentType(type: string | undefined | null): boolean {
  return !!type && (PERMANENT_TYPES as readonly string[]).includes(type);
}

/** The message of anything thrown, without a stack. */
export function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
