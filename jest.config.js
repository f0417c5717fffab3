/** @type {import('jest').Config} */
module.exports = {
  testEnvironment: 'node',
  roots: ['<rootDir>/test'],
  testMatch: ['**/*.test.ts'],
  transform: { "^.+\\.ts$": ["ts-jest", {}] },
  testTimeout: 120000,
  // One TLS certificate per run for the Compute stand-in; NODE_EXTRA_CA_CERTS reaches workers and spawned CLIs.
  globalSetup: '<rootDir>/test/global-setup.ts',
  globalTeardown: '<rootDir>/test/global-teardown.ts',
  // Buffers compare as bytes in toEqual (jest's element-by-element walk takes about a minute per MiB).
  setupFilesAfterEnv: ['<rootDir>/test/harness/jest-setup.ts'],
  // The Functions worker normally supplies '@azure/functions-core'; the local durable runtime's
  // stand-in captures app.* registrations so tests invoke the real handlers (see runtime/functionsCore.ts).
  moduleNameMapper: { '^@azure/functions-core$': '<rootDir>/runtime/functionsCore.ts' },
  // Each suite starts its own Azurite on a free loopback port; two workers fit this 2-core machine.
  maxWorkers: 2,
};
