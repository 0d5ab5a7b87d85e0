import { LifeboatError } from '../errors';

/**
 * Names that become object keys, workflow ids or SQL identifiers. They are
 * validated once, here, so no layer below has to defend against `..`, `/`
 * tricks or control characters.
 */
const NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/;

export function validateName(what: string, value: unknown): string {
  if (typeof value !== 'string' || !NAME.test(value) || value.includes('..')) {
    const shown = typeof value === 'string' ? JSON.stringify(value.slice(0, 80)) : String(value);
    throw new LifeboatError(
      'InvalidName',
      `${what} ${shown} is not a valid name: use 1-63 letters, digits, '.', '_' or '-', starting with a letter or digit, without '..'`,
    );
  }
  return value;
}

const BACKUP_ID = /^(\d{8}T\d{6}Z)-([0-9a-f]{4,12})$/;

/** `20261123T020000Z-7f3a`: sortable by time, unique by the random suffix. */
export function makeBackupId(at: Date, randomHex: string): string {
  const stamp = at.toISOString().replace(/\.\d{3}Z$/, 'Z').replace(/[-:]/g, '');
  return `${stamp}-${randomHex.toLowerCase().replace(/[^0-9a-f]/g, '').slice(0, 4).padEnd(4, '0')}`;
}

export function validateBackupId(value: unknown): string {
  if (typeof value !== 'string' || !BACKUP_ID.test(value)) {
    throw new LifeboatError(
      'InvalidName',
      `backup id ${JSON.stringify(String(value).slice(0, 80))} is not a lifeboat backup id (like 20261123T020000Z-7f3a); run 'lifeboat ls' to see the backups`,
    );
  }
  return value;
}

/** The moment a backup id was taken. */
export function backupIdTime(id: string): Date {
  const m = BACKUP_ID.exec(validateBackupId(id));
  const s = m![1]!;
  return new Date(`${s.slice(0, 4)}-${s.slice(4, 6)}-${s.slice(6, 8)}T${s.slice(9, 11)}:${s.slice(11, 13)}:${s.slice(13, 15)}Z`);
}

/**
 * A folder inside a bucket target, e.g. one tenant's `tenant-a/`: relative,
 * no `..` or `.` segments, no control characters. It is always a folder:
 * `tenant-a` means `tenant-a/`, so it never matches `tenant-ab/` too.
 */
export function validateSubPrefix(value: unknown): string {
  const ok =
    typeof value === 'string' &&
    value.length > 0 &&
    value.length <= 512 &&
    !value.startsWith('/') &&
    !/[\x00-\x1f\x7f]/.test(value) &&
    value.split('/').every((seg, i, all) => (seg !== '' || i === all.length - 1) && seg !== '.' && seg !== '..');
  if (!ok) {
    throw new LifeboatError('InvalidName', `sub-prefix ${JSON.stringify(String(value).slice(0, 80))} is not valid: give a relative folder like 'tenant-a/', without '..', '.', empty segments or control characters`);
  }
  return value.endsWith('/') ? value : `${value}/`;
}
