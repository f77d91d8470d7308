import { DaemonSet } from 'kubernetes-models/apps/v1/DaemonSet';
import { ClusterRole } from 'kubernetes-models/rbac.authorization.k8s.io/v1/ClusterRole';
import { ClusterRoleBinding } from 'kubernetes-models/rbac.authorization.k8s.io/v1/ClusterRoleBinding';
import { Namespace } from 'kubernetes-models/v1/Namespace';
import { ServiceAccount } from 'kubernetes-models/v1/ServiceAccount';

/**
 * ferry's node agent on every node of a cluster, as typed Kubernetes objects (kubernetes-models
 * types them, and validates each against the Kubernetes OpenAPI schema in render.ts). Emitted as
 * YAML into deploy/kubernetes/ by scripts/emit-kubernetes.mjs; a test fails when the checked-in
 * YAML differs from what these objects render to.
 */

export const NAMESPACE = 'ferry-system';
export const NAME = 'ferry-agent';
/** ferry's documented agent port (src/agent/listen.ts DEFAULT_PORT; the test checks they agree). */
export const AGENT_PORT = 7387;
/** The agent's image: ferry with Node.js ≥ 20, CRIU ≥ 4.2, runc, iptables (not published: build it, see docs/kubernetes.md). */
export const AGENT_IMAGE = 'localhost/ferry:0.1.0';
/** The Secret holding the agent's bearer token (key `token`), created by the operator, never checked in. */
export const TOKEN_SECRET = 'ferry-agent-token';
const TOKEN_DIR = '/etc/ferry/token';
const STORE = '/var/lib/ferry';
const labels = { 'app.kubernetes.io/name': NAME, 'app.kubernetes.io/part-of': 'ferry' };

/**
 * The probes run inside the container: the agent's routes, /v1/health included, need the bearer
 * token once it listens beyond loopback (src/agent/app.ts), and an httpGet probe can only send
 * headers written literally into the manifest — the token would have to be checked in. So the
 * probe is a `node -e` that reads the token from the Secret's file and asks /v1/health on the
 * node address, with a 4 s watchdog.
 */
const HEALTH_PROBE = [
  'node', '-e',
  `const t=require('fs').readFileSync('${TOKEN_DIR}/token','utf8').split('\\n')[0].trim();` +
  `fetch('http://'+process.env.HOST_IP+':${AGENT_PORT}/v1/health',{headers:{authorization:'Bearer '+t},signal:AbortSignal.timeout(4000)})` +
  '.then(r=>process.exit(r.ok?0:1),()=>process.exit(1))',
];

export function namespace(): Namespace {
  return new Namespace({ metadata: { name: NAMESPACE, labels } });
}

export function serviceAccount(): ServiceAccount {
  return new ServiceAccount({ metadata: { name: NAME, namespace: NAMESPACE, labels } });
}

/**
 * Minimal: the agent itself reads nothing from the API server. The one grant is what
 * docs/kubernetes.md's kubelet step needs when it runs with this account's token: POST
 * /checkpoint/{namespace}/{pod}/{container} on a kubelet is authorized as verb `create` on
 * `nodes/checkpoint` (the kubelet's SubjectAccessReview; kubelet-authn-authz).
 */
export function clusterRole(): ClusterRole {
  return new ClusterRole({
    metadata: { name: NAME, labels },
    rules: [{ apiGroups: [''], resources: ['nodes/checkpoint'], verbs: ['create'] }],
  });
}

export function clusterRoleBinding(): ClusterRoleBinding {
  return new ClusterRoleBinding({
    metadata: { name: NAME, labels },
    roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: NAME },
    subjects: [{ kind: 'ServiceAccount', name: NAME, namespace: NAMESPACE }],
  });
}

const hostDir = (name: string, path: string, type: 'DirectoryOrCreate' | 'Directory' = 'DirectoryOrCreate') => ({ name, hostPath: { path, type } });

export function daemonSet(): DaemonSet {
  return new DaemonSet({
    metadata: { name: NAME, namespace: NAMESPACE, labels },
    spec: {
      selector: { matchLabels: { 'app.kubernetes.io/name': NAME } },
      // One node at a time: an agent stopping cancels its unfinished jobs (their workloads keep running).
      updateStrategy: { type: 'RollingUpdate', rollingUpdate: { maxUnavailable: 1 } },
      template: {
        metadata: {
          labels,
          // /metrics needs the bearer token too: scrape with `authorization.credentials_file`
          // pointing at the same Secret (docs/kubernetes.md).
          annotations: { 'prometheus.io/scrape': 'true', 'prometheus.io/port': String(AGENT_PORT), 'prometheus.io/path': '/metrics', 'prometheus.io/scheme': 'http' },
        },
        spec: {
          serviceAccountName: NAME,
          // CRIU works on the node's processes, pids and network namespaces; the API listens on the node's address.
          hostPID: true,
          hostNetwork: true,
          dnsPolicy: 'ClusterFirstWithHostNet',
          // Every node, control plane and tainted ones included: a workload anywhere may need to move.
          tolerations: [{ operator: 'Exists' }],
          // SIGTERM makes the agent cancel its jobs at their safe points and wait for them (README "The agent").
          terminationGracePeriodSeconds: 120,
          containers: [{
            name: 'agent',
            image: AGENT_IMAGE,
            imagePullPolicy: 'IfNotPresent',
            command: ['ferry'],
            args: ['--store', STORE, 'agent', '--listen', `$(HOST_IP):${AGENT_PORT}`, '--token-file', `${TOKEN_DIR}/token`, '--json'],
            env: [
              { name: 'HOST_IP', valueFrom: { fieldRef: { fieldPath: 'status.hostIP' } } },
              { name: 'NODE_NAME', valueFrom: { fieldRef: { fieldPath: 'spec.nodeName' } } },
              // The memory tier on the node's RAM (the hostPath below), not the pod's 64 MiB /dev/shm.
              { name: 'FERRY_MEMORY_TIER', value: '/dev/shm/ferry' },
            ],
            ports: [{ name: 'api', containerPort: AGENT_PORT, hostPort: AGENT_PORT, protocol: 'TCP' }],
            securityContext: { privileged: true },
            // No memory limit: processes ferry restores are born in the agent's cgroup (containers
            // are moved into their own by their runtime), and a limit would OOM-kill them.
            resources: { requests: { cpu: '100m', memory: '128Mi' } },
            readinessProbe: { exec: { command: HEALTH_PROBE }, initialDelaySeconds: 2, periodSeconds: 10, timeoutSeconds: 5, failureThreshold: 3 },
            livenessProbe: { exec: { command: HEALTH_PROBE }, initialDelaySeconds: 10, periodSeconds: 20, timeoutSeconds: 5, failureThreshold: 3 },
            volumeMounts: [
              { name: 'store', mountPath: STORE },
              { name: 'memory-tier', mountPath: '/dev/shm/ferry' },
              { name: 'token', mountPath: TOKEN_DIR, readOnly: true },
              { name: 'kubelet-checkpoints', mountPath: '/var/lib/kubelet/checkpoints', readOnly: true },
              { name: 'runc-state', mountPath: '/run/runc' },
              { name: 'containerd-state', mountPath: '/run/containerd' },
              { name: 'cgroup', mountPath: '/sys/fs/cgroup' },
            ],
          }],
          volumes: [
            hostDir('store', STORE),
            hostDir('memory-tier', '/dev/shm/ferry'),
            { name: 'token', secret: { secretName: TOKEN_SECRET, defaultMode: 0o400 } },
            // The kubelet's checkpoint archives (POST /checkpoint/… writes them here).
            hostDir('kubelet-checkpoints', '/var/lib/kubelet/checkpoints'),
            // Runtime state roots for `ferry checkpoint container:ID --runtime-root DIR`: runc's
            // (CRI-O's default) and containerd's runc shims (/run/containerd/runc/k8s.io).
            hostDir('runc-state', '/run/runc'),
            hostDir('containerd-state', '/run/containerd'),
            hostDir('cgroup', '/sys/fs/cgroup', 'Directory'),
          ],
        },
      },
    },
  });
}
