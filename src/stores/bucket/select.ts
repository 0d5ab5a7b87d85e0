/**
 * Which objects a backup takes: rclone's filter globs, so the Deckhouse
 * runbook's `--exclude` lines carry over unchanged, plus rclone's
 * `--exclude-if-present deletion-mark.json`, which is about folders and so is
 * not a glob.
 */

export const DELETION_MARK = 'deletion-mark.json';

/**
 * rclone's glob: `*` and `?` stay inside one path segment, `**` crosses
 * segments, `[...]` and `{a,b}` as usual. A pattern starting with `/` is
 * anchored at the prefix; otherwise it matches the end of the key at a segment
 * boundary (`*.tmp` matches `a/b.tmp`). A trailing `/` means "this folder and
 * everything below it".
 */
export function compileGlob(glob: string): RegExp {
  let g = glob;
  const anchored = g.startsWith('/');
  if (anchored) g = g.slice(1);
  if (g.endsWith('/')) g += '**';
  if (g === '') throw new Error('is an empty pattern');
  let re = '';
  let braces = 0;
  for (let i = 0; i < g.length; i++) {
    const c = g[i]!;
    if (c === '*') {
      if (g[i + 1] === '*') {
        re += '.*';
        i++;
      } else re += '[^/]*';
    } else if (c === '?') re += '[^/]';
    else if (c === '[') {
      const end = g.indexOf(']', i + 2);
      if (end < 0) throw new Error(`has an unclosed '[' in ${JSON.stringify(glob)}`);
      const body = g.slice(i + 1, end).replace(/\\/g, '\\\\');
      re += body.startsWith('!') ? `[^/${body.slice(1)}]` : `[${body}]`;
      i = end;
    } else if (c === '{') {
      braces++;
      re += '(?:';
    } else if (c === '}' && braces > 0) {
      braces--;
      re += ')';
    } else if (c === ',' && braces > 0) re += '|';
    else if (c === '\\' && i + 1 < g.length) re += escape(g[++i]!);
    else re += escape(c);
  }
  if (braces !== 0) throw new Error(`has an unclosed '{' in ${JSON.stringify(glob)}`);
  return new RegExp(anchored ? `^${re}$` : `(?:^|/)${re}$`);
}

function escape(c: string): string {
  return /[.+^$()|{}[\]\\]/.test(c) ? `\\${c}` : c;
}

export function baseName(key: string): string {
  return key.slice(key.lastIndexOf('/') + 1);
}

/** 'a/b/c' -> 'a/b/'; '' for a top-level key. */
export function dirName(key: string): string {
  return key.slice(0, key.lastIndexOf('/') + 1);
}

export interface Selection<T> {
  kept: T[];
  excluded: number;
}

/**
 * Splits relative keys into kept and excluded. A folder holding
 * `deletion-mark.json` is left out with everything below it, the mark
 * included; the prefix itself is never treated as such a folder (a stray mark
 * there would otherwise silently empty the backup).
 */
export function selectObjects<T extends { rel: string }>(objects: T[], opts: { exclude: string[]; excludeDeletionMarked: boolean }): Selection<T> {
  const globs = opts.exclude.map(compileGlob);
  const marked = new Set<string>();
  if (opts.excludeDeletionMarked) {
    for (const o of objects) if (baseName(o.rel) === DELETION_MARK && o.rel.includes('/')) marked.add(dirName(o.rel));
  }
  const underMarked = (rel: string) => {
    if (marked.size === 0) return false;
    for (let i = rel.indexOf('/'); i >= 0; i = rel.indexOf('/', i + 1)) if (marked.has(rel.slice(0, i + 1))) return true;
    return false;
  };
  const kept = objects.filter((o) => !globs.some((g) => g.test(o.rel)) && !underMarked(o.rel));
  return { kept, excluded: objects.length - kept.length };
}

/** Whether a relative key is one of the completion markers (by file name). */
export function isMarker(rel: string, markers: readonly string[]): boolean {
  return markers.includes(baseName(rel));
}
