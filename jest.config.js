/** Tests talk to the real servers of the local stack (scripts/stack.sh up). */
module.exports = {
  preset: 'ts-jest',
  testEnvironment: 'node',
  roots: ['<rootDir>/test'],
  testMatch: ['**/*.test.ts'],
  testTimeout: 120_000,
  // Two files at a time: each has its own repository prefix, task queue, database names, lock
  // prefix and (Redis, Vault, PITR) servers, and most of a file's time is spent waiting on
  // Temporal (heartbeat timeouts, retries, hooks that sleep), not on the CPU.
  maxWorkers: 2,
  transform: { '^.+\\.ts$': ['ts-jest', { tsconfig: 'tsconfig.jest.json' }] },
};
