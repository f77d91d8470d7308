import { stringify } from 'yaml';
import { clusterRole, clusterRoleBinding, daemonSet, namespace, serviceAccount } from './agent.js';

/** A Kubernetes object as kubernetes-models builds it: validated against its schema, then plain JSON. */
interface Model { validate(): void; toJSON(): unknown }

const HEADER = '# Generated from src/deploy/kubernetes/*.ts by scripts/emit-kubernetes.mjs: do not edit by hand\n' +
  '# (src/deploy/kubernetes/manifests.test.ts fails when this file and its source differ).\n';

/** The files of deploy/kubernetes/, in `kubectl apply -f deploy/kubernetes/` order, each a YAML stream. */
export const MANIFEST_FILES: Record<string, () => Model[]> = {
  '00-namespace.yaml': () => [namespace()],
  '10-rbac.yaml': () => [serviceAccount(), clusterRole(), clusterRoleBinding()],
  '20-daemonset.yaml': () => [daemonSet()],
};

/**
 * Renders every file: each object is validated against the Kubernetes OpenAPI schema first
 * (kubernetes-models' validate(): a wrong field, type or missing required field throws, naming
 * its path), then written as YAML, one document per object.
 */
export function renderManifests(): Map<string, string> {
  const out = new Map<string, string>();
  for (const [file, build] of Object.entries(MANIFEST_FILES)) {
    const docs = build().map((m) => {
      m.validate();
      return stringify(m.toJSON(), { lineWidth: 0 });
    });
    out.set(file, HEADER + docs.map((d) => `---\n${d}`).join(''));
  }
  return out;
}
