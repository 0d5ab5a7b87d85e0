/**
 * Quoting for InfluxQL and the line protocol. Values travel as bound
 * parameters (`$name` with the `params` form field) wherever InfluxQL takes
 * them; identifiers (database names) cannot be bound and are quoted here.
 */

/** `"name"`, with `\` and `"` escaped as InfluxQL's scanner reads them. */
export function quoteIdent(name: string): string {
  return `"${name.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n')}"`;
}

/**
 * A line-protocol tag value: commas, equals signs and spaces escaped. A
 * backslash or line break has no unambiguous spelling there, so it is refused.
 */
export function lineTag(value: string): string {
  if (/[\\\r\n]/.test(value) || value === '') throw new Error(`${JSON.stringify(value)} cannot be written as a line-protocol tag value`);
  return value.replace(/([,= ])/g, '\\$1');
}
