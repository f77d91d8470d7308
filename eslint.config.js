// Type-aware lint. The layer rule keeps imports pointing downward (ARCHITECTURE.md):
//   cli -> agent, bench -> migrate -> engine -> scheduler -> targets -> net, store -> telemetry -> criu -> native
//   (doctor beside scheduler; testbed beside engine, on store and criu, used by cli and bench; tests may cross;
//    dashboard, the agent's page, on the agent's client — nothing imports it: the agent serves its built files)
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

const layers = {
  native: [],
  criu: ['native'],
  telemetry: ['native', 'criu'],
  doctor: ['native', 'criu'],
  net: ['native', 'criu', 'telemetry'],
  // OCI image layouts, checkpoint-image annotations, kubelet archive names, containers-storage through podman
  oci: [],
  // the Kubernetes manifests (typed objects), emitted as YAML into deploy/kubernetes/
  deploy: [],
  store: ['native', 'criu', 'telemetry'],
  targets: ['native', 'criu', 'telemetry', 'store', 'net'],
  scheduler: ['native', 'criu', 'telemetry', 'store', 'targets'],
  engine: ['native', 'criu', 'telemetry', 'doctor', 'store', 'targets', 'scheduler', 'oci'],
  migrate: ['native', 'criu', 'telemetry', 'store', 'net', 'targets', 'scheduler', 'engine', 'oci'],
  testbed: ['native', 'criu', 'telemetry', 'store'],
  scenarios: ['native', 'criu', 'telemetry', 'store', 'net', 'targets', 'scheduler', 'engine', 'migrate', 'oci'],
  cli: ['native', 'criu', 'telemetry', 'doctor', 'net', 'store', 'targets', 'scheduler', 'migrate', 'scenarios', 'engine', 'agent', 'bench', 'testbed', 'oci'],
  agent: ['native', 'criu', 'telemetry', 'doctor', 'net', 'store', 'targets', 'scheduler', 'migrate', 'scenarios', 'engine', 'oci'],
  bench: ['native', 'criu', 'telemetry', 'doctor', 'net', 'store', 'targets', 'scheduler', 'migrate', 'scenarios', 'engine', 'testbed', 'oci'],
  // The dashboard's page (bundled for the browser): the agent's typed client and the types of what it shows.
  dashboard: ['native', 'criu', 'telemetry', 'doctor', 'net', 'store', 'targets', 'scheduler', 'migrate', 'scenarios', 'engine', 'agent', 'oci'],
};
const all = Object.keys(layers);
// `util` is shared, dependency-free code every layer may use.
const layerRules = all.map((layer) => ({
  files: [`src/${layer}/**/*.ts`, `src/${layer}/**/*.tsx`],
  // Tests compose layers (an end-to-end test of a migration starts agents and a testbed).
  ignores: ['**/*.test.ts'],
  rules: {
    'no-restricted-imports': ['error', {
      patterns: all
        .filter((other) => other !== layer && !layers[layer].includes(other))
        .map((other) => ({
          group: [`../${other}/*`, `../../${other}/*`, `../${other}`, `../../${other}`],
          message: `layer '${layer}' may not import '${other}' (imports point downward; see ARCHITECTURE.md)`,
        })),
    }],
  },
}));

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', 'native/build/**', '.deps/**', 'src/criu/gen/**', 'bin/**', 'scripts/**', 'eslint.config.js'] },
  js.configs.recommended,
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: { parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname } },
    rules: {
      // node:test's describe/it return promises the runner itself awaits.
      '@typescript-eslint/no-floating-promises': ['error', {
        allowForKnownSafeCalls: [{ from: 'package', package: 'node:test', name: ['describe', 'it', 'test', 'suite'] }],
      }],
      '@typescript-eslint/no-misused-promises': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
    },
  },
  ...layerRules,
);
