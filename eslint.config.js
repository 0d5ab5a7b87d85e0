// @ts-check
const tseslint = require('typescript-eslint');

/** Workflow code is replayed deterministically: it must not reach I/O, clocks outside the SDK, or stores. */
const workflowForbidden = {
  patterns: [
    { group: ['node:*'], message: 'workflows are deterministic: no Node built-ins; call an activity instead' },
    { group: ['pg', 'pg-*', '@aws-sdk/*', '@clickhouse/*'], message: 'workflows never talk to stores: call an activity instead' },
    { group: ['**/stores', '**/stores/**', '**/repo', '**/repo/**', '**/crypto', '**/crypto/**', '**/config', '**/config/**', '**/activities/index', '**/worker', '**/worker/**'], message: 'workflows import only @temporalio/workflow, src/domain, src/errors and `import type` of the activities' },
  ],
  paths: ['fs', 'path', 'child_process', 'crypto', 'os', 'http', 'https', 'net', 'stream', 'zlib', 'events', 'util'].map((name) => ({ name, message: 'workflows are deterministic: no Node built-ins' })),
};

module.exports = tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', 'coverage/**', '.stack/**', 'eslint.config.js', 'jest.config.js', 'test/fixtures/*.js'] },
  ...tseslint.configs.recommended,
  {
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_' }],
    },
  },
  {
    files: ['src/workflows/**/*.ts'],
    rules: {
      '@typescript-eslint/no-restricted-imports': ['error', { ...workflowForbidden, patterns: workflowForbidden.patterns.map((p) => ({ ...p, allowTypeImports: true })) }],
    },
  },
  {
    files: ['src/stores/**/*.ts'],
    rules: {
      'no-restricted-imports': ['error', { patterns: [{ group: ['@temporalio/*'], message: 'stores never import Temporal: they take a StoreContext' }] }],
    },
  },
);
