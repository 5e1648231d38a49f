import { buildPifleetApp } from './build-app.js';

// Entry point of `cdk synth` / `cdk deploy` (see cdk.json). Builds offline: bundling is local esbuild.
const built = await buildPifleetApp();
try {
  built.app.synth();
} finally {
  built.dispose();
}
