/** Jest runs the front-end model tests in Node with ts-jest; models import no JupyterLab code. */
module.exports = {
  testEnvironment: 'node',
  roots: ['<rootDir>/tests'],
  testMatch: ['**/*.test.ts'],
  transform: {
    '^.+\\.ts$': ['ts-jest', { tsconfig: 'tests/tsconfig.json' }]
  },
  collectCoverageFrom: [
    'src/api.ts',
    'src/store.ts',
    'src/events.ts',
    'src/sync.ts',
    'src/logbuffer.ts',
    'src/submitmodel.ts',
    'src/format.ts',
    'src/widgets/frame.ts'
  ],
  coverageReporters: ['text-summary']
};
