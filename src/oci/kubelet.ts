/**
 * Checkpoint archives written by the kubelet (`POST /checkpoint/{namespace}/{pod}/{container}`
 * on its port, 10250 by default). The kubelet asks the CRI runtime (CRI-O, containerd ≥ 2.0)
 * to write `<kubelet root>/checkpoints/checkpoint-<pod>_<namespace>-<container>-<RFC 3339
 * time>.tar` (e.g. `checkpoint-counter-7d9f_default-counter-2024-02-29T18:28:17Z.tar`): an
 * uncompressed tar in the runtime's checkpoint layout — CRI-O's is Podman's `--export` layout
 * (checkpoint/, config.dump, spec.dump, …); containerd adds status.dump, status and container.log.
 *
 * The name is a hint only (pod and namespace are joined by '_', which neither may contain, but
 * a namespace and a container name may both contain '-'); the container's own annotations in
 * spec.dump say exactly who it was.
 */

export interface KubernetesIdentity { pod: string; namespace: string; container: string }
export interface KubeletArchiveName {
  pod: string;
  /** `<namespace>-<container>`: where one ends and the other begins, the name does not say. */
  rest: string;
  time: string;
}

const KUBELET_NAME = /^checkpoint-([a-z0-9.-]+)_([a-z0-9][a-z0-9-]*)-(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:\d{2}))\.tar$/;

/**
 * Splits a kubelet archive's file name: the pod, then "<namespace>-<container>" (ambiguous when
 * either holds a '-') and the time; undefined when the name is not the kubelet's.
 */
export function parseKubeletArchiveName(fileName: string): KubeletArchiveName | undefined {
  const m = KUBELET_NAME.exec(fileName);
  if (!m?.[1] || !m[2] || !m[3]) return undefined;
  return { pod: m[1], rest: m[2], time: m[3] };
}

/**
 * Who a container was in Kubernetes, from its OCI spec's annotations: CRI-O and the kubelet's
 * labels (io.kubernetes.pod.name, io.kubernetes.pod.namespace, io.kubernetes.container.name),
 * or containerd's CRI annotations (io.kubernetes.cri.sandbox-name, …-namespace,
 * io.kubernetes.cri.container-name). Undefined for a container Kubernetes did not start.
 */
export function kubernetesIdentity(annotations: Record<string, string> | undefined): KubernetesIdentity | undefined {
  if (!annotations) return undefined;
  const pick = (...keys: string[]) => keys.map((k) => annotations[k]).find((v) => typeof v === 'string' && v !== '');
  const pod = pick('io.kubernetes.pod.name', 'io.kubernetes.cri.sandbox-name', 'io.kubernetes.cri-o.KubeName');
  const namespace = pick('io.kubernetes.pod.namespace', 'io.kubernetes.cri.sandbox-namespace', 'io.kubernetes.cri-o.Namespace');
  const container = pick('io.kubernetes.container.name', 'io.kubernetes.cri.container-name');
  if (!pod || !namespace || !container) return undefined;
  return { pod, namespace, container };
}

/**
 * A container id for a runtime (runc's grammar: letters, digits, '_', '+', '-', '.') derived
 * from a Kubernetes identity: `<namespace>.<pod>.<container>`. Namespaces and container
 * names are DNS labels (no '.'), so the first and last dots split it back unambiguously even
 * when the pod's name (a DNS subdomain) holds dots.
 */
export function containerIdFor(k: KubernetesIdentity): string {
  return `${k.namespace}.${k.pod}.${k.container}`.replace(/[^\w+.-]/g, '-').slice(0, 1024);
}
