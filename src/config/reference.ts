import { configJsonSchema } from './json-schema';
import type { KindSettings } from './index';

/**
 * docs/config-reference.md, made from the one schema (`lifeboat config
 * reference`): every setting with its type, default and what it does. A test
 * keeps the committed page equal to what this prints.
 */
type Schema = {
  type?: string | string[];
  properties?: Record<string, Schema>;
  required?: string[];
  items?: Schema;
  anyOf?: Schema[];
  enum?: unknown[];
  const?: unknown;
  default?: unknown;
  description?: string;
  additionalProperties?: Schema | boolean;
  minimum?: number;
  maximum?: number;
  pattern?: string;
};

function typeOf(s: Schema): string {
  if (s.const !== undefined) return JSON.stringify(s.const);
  if (s.enum) return s.enum.map((v) => JSON.stringify(v)).join(' \\| ');
  if (s.anyOf) {
    const secret = s.anyOf.some((a) => a.properties?.file) && s.anyOf.some((a) => a.properties?.env);
    if (secret) return 'secret `{ file }` or `{ env }`';
    return [...new Set(s.anyOf.map(typeOf))].join(' or ');
  }
  if (s.type === 'array') return `list of ${s.items ? typeOf(s.items) : 'values'}`;
  if (s.type === 'object' && !s.properties && typeof s.additionalProperties === 'object') return `map of ${typeOf(s.additionalProperties)}`;
  if (s.type === 'integer') return s.minimum !== undefined && s.maximum !== undefined && s.maximum < 1e9 ? `integer ${s.minimum}–${s.maximum}` : 'integer';
  return Array.isArray(s.type) ? s.type.join(' or ') : (s.type ?? 'any');
}

function rows(s: Schema, path: string, out: string[]): void {
  for (const [key, p] of Object.entries(s.properties ?? {})) {
    const at = path ? `${path}.${key}` : key;
    const req = s.required?.includes(key) && p.default === undefined;
    const def = p.default !== undefined ? `\`${JSON.stringify(p.default)}\`` : req ? '**required**' : '';
    const desc = (p.description ?? '').replace(/\|/g, '\\|');
    out.push(`| \`${at}\` | ${typeOf(p)} | ${def} | ${desc} |`);
    if (p.properties) rows(p, at, out);
    else if (p.anyOf) for (const a of p.anyOf) if (a.properties && !(a.properties.file || a.properties.env)) rows(a, at, out);
    if (p.items?.properties) rows(p.items, `${at}[]`, out);
  }
}

const HEAD = ['| setting | type | default | what it does |', '|---|---|---|---|'];

export function configReference(kinds: Record<string, KindSettings>): string {
  const schema = configJsonSchema(kinds) as Schema;
  const top: Schema = { ...schema, properties: Object.fromEntries(Object.entries(schema.properties ?? {}).filter(([k]) => k !== 'targets')) };
  const out = [
    '# lifeboat.yaml reference',
    '',
    'Made from the schema that validates the file (`lifeboat config reference`); the editor JSON Schema is `lifeboat config schema`. Unknown keys are errors, with a suggestion when one looks like a typo. See [config.md](config.md) for a worked example.',
    '',
    '## Top level',
    '',
    ...HEAD,
  ];
  rows(top, '', out);
  const targets = schema.properties?.targets?.additionalProperties as Schema | undefined;
  for (const t of targets?.anyOf ?? []) {
    const kind = t.properties?.kind?.const as string;
    out.push('', `## Targets of kind \`${kind}\``, '', ...HEAD);
    rows({ ...t, properties: Object.fromEntries(Object.entries(t.properties ?? {}).filter(([k]) => k !== 'kind')) }, `targets.<name>`, out);
  }
  return `${out.join('\n')}\n`;
}
