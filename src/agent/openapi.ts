import { z } from 'zod';
import { MIGRATION_ID_RE, WIRE_CONTENT_TYPE } from '../migrate/wire.js';
import { CheckpointBody, JobId, RestoreBody, SnapshotId } from './schemas.js';
import { MigrationPreflightBody } from './routes/migration-preflight.js';
import { EvacuateBody } from './routes/host.js';
import { FailoverBody, ScheduleBody } from './routes/schedules.js';
import { ReplicaRecordSchema } from '../scenarios/replicas.js';

/** The OpenAPI 3.1 document of the agent, its request schemas derived from the zod schemas the routes validate with. */
export function openApiDocument(version: string): Record<string, unknown> {
  const schema = (s: z.ZodType) => z.toJSONSchema(s, { target: 'draft-2020-12', unrepresentable: 'any' });
  const json = (ref: string) => ({ content: { 'application/json': { schema: { $ref: `#/components/schemas/${ref}` } } } });
  const error = { description: 'an error: { error: { code, message, hint? } }', ...json('Error') };
  const param = (name: string, s: z.ZodType) => ({ name, in: 'path', required: true, schema: schema(s) });
  const ok = (description: string) => ({ description, content: { 'application/json': {} } });
  const errors = { 400: error, 401: error, 404: error, 413: error, 500: error };
  return {
    openapi: '3.1.0',
    info: { title: 'ferry agent', version },
    components: {
      securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } },
      schemas: {
        CheckpointBody: schema(CheckpointBody),
        RestoreBody: schema(RestoreBody),
        EvacuateBody: schema(EvacuateBody),
        ScheduleBody: schema(ScheduleBody),
        ReplicaRecord: schema(ReplicaRecordSchema),
        FailoverBody: schema(FailoverBody),
        Error: { type: 'object', required: ['error'], properties: { error: { type: 'object', required: ['code', 'message'], properties: { code: { type: 'string' }, message: { type: 'string' }, hint: { type: 'string' } } } } },
      },
    },
    security: [{ bearer: [] }],
    paths: {
      '/v1/health': { get: { summary: 'the agent is up; its version and CRIU\'s', responses: { 200: ok('{ ok, version, criu: { version } }') } } },
      '/v1/checkpoints': { post: { summary: 'submit a checkpoint job', requestBody: { required: true, ...json('CheckpointBody') }, responses: { 202: ok('{ job }'), ...errors } } },
      '/v1/restores': { post: { summary: 'submit a restore job', requestBody: { required: true, ...json('RestoreBody') }, responses: { 202: ok('{ job }'), ...errors } } },
      '/v1/jobs': { get: { summary: 'every job kept', responses: { 200: ok('{ jobs: [job] }'), ...errors } } },
      '/v1/jobs/{id}': {
        get: { summary: 'one job', parameters: [param('id', JobId)], responses: { 200: ok('{ job }'), ...errors } },
        delete: { summary: 'cancel a job', parameters: [param('id', JobId)], responses: { 202: ok('{ job, cancelled: true }'), 200: ok('{ job, cancelled: false } (already finished)'), ...errors } },
      },
      '/v1/jobs/{id}/events': { get: { summary: "server-sent events: 'state' (with the job: a queued one has queuePosition, 1 = next, and queueLength), 'phase', and 'progress' ({ queuePosition, queueLength } as a waiting job's place moves); replayed from the job's start, ending after its final state", parameters: [param('id', JobId)], responses: { 200: { description: 'text/event-stream', content: { 'text/event-stream': {} } }, ...errors } } },
      '/v1/snapshots': { get: { summary: 'every complete snapshot (manifests)', responses: { 200: ok('{ snapshots: [manifest + dir] }'), ...errors } } },
      '/v1/snapshots/{id}': {
        get: { summary: "one snapshot's manifest", parameters: [param('id', SnapshotId)], responses: { 200: ok('{ snapshot }'), ...errors } },
        delete: { summary: 'remove a snapshot (snapshots building on it take over its pages)', parameters: [param('id', SnapshotId)], responses: { 200: ok('{ removed, result }'), ...errors } },
      },
      '/v1/snapshots/{id}/inspect': { get: { summary: 'as `ferry snapshots inspect ID --json`: the manifest and the decoded CRIU images; ?env=full shows the environment\'s values (default names only)', parameters: [param('id', SnapshotId), { name: 'env', in: 'query', required: false, schema: { enum: ['names', 'full'] } }], responses: { 200: ok('{ manifest, environmentValues, images }'), ...errors } } },
      '/v1/store': { get: { summary: 'the store\'s listing, as `ferry snapshots ls --json`: snapshots, damaged ones, leftovers, totals, memory tier', responses: { 200: ok('{ snapshots, damaged, leftovers, totalBytes, totalLogicalBytes, totalStoredBytes, memoryTier }'), ...errors } } },
      '/v1/workloads': { get: { summary: 'the workloads `ferry run` started in this store (as `ferry ps --json`)', responses: { 200: ok('{ workloads, workloadsDir }'), ...errors } } },
      '/v1/migrations/{id}/images': {
        put: {
          summary: 'receive a migration\'s images as a stream (src/migrate/wire.ts: XXH3 per chunk, optional zstd) into a new sealed snapshot; on any failure nothing is kept',
          parameters: [
            { name: 'id', in: 'path', required: true, schema: { type: 'string', pattern: MIGRATION_ID_RE.source } },
            { name: 'tier', in: 'query', required: false, schema: { type: 'string', enum: ['disk', 'memory'] } },
            { name: 'snapshot', in: 'query', required: false, schema: schema(SnapshotId) },
          ],
          requestBody: { required: true, content: { [WIRE_CONTENT_TYPE]: { schema: { type: 'string', format: 'binary' } } } },
          responses: { 201: ok('{ snapshot, tier, bytes, wireBytes, files, ms }'), 409: error, 422: error, 504: error, 507: error, ...errors },
        },
      },
      '/v1/peers': { get: { summary: 'this agent and the peers it knows (FERRY_PEERS), each asked for its health now', responses: { 200: ok('{ self: { name, version, criu, store }, peers: [{ name, url, ok, version?, criu?, store?, error? }] }'), ...errors } } },
      '/v1/migrations/preflight': { post: { summary: "a migration's preflight alone (a dry run): the target resolved here, the destination's verdict; nothing frozen, the destination forgets it", requestBody: { required: true, content: { 'application/json': { schema: schema(MigrationPreflightBody) } } }, responses: { 200: ok('{ ok, migration, target, bytes, address, source, destination, ms }'), 422: error, 502: error, 503: error, ...errors } } },
      '/': { get: { summary: 'the dashboard (a web page; served without the token, its API calls need it)', security: [], responses: { 200: { description: 'text/html', content: { 'text/html': {} } }, 503: error } } },
      '/v1/host/evacuate': { post: { summary: 'start a host evacuation (every ferry workload and container: to the disk tier with a manifest, or migrated to `to`), in the background', requestBody: { required: true, ...json('EvacuateBody') }, responses: { 202: ok('{ operation }'), 409: error, ...errors } } },
      '/v1/host/restore': { post: { summary: 'start restoring the newest evacuation manifest\'s workloads, each verified, in the background', responses: { 202: ok('{ operation }'), 409: error, ...errors } } },
      '/v1/host/operations/{id}': { get: { summary: 'a host operation: { id, kind, state: running|succeeded|failed, result?, error? }', parameters: [{ name: 'id', in: 'path', required: true, schema: { type: 'string', pattern: '^h-[0-9a-f]{16}$' } }], responses: { 200: ok('{ operation }'), ...errors } } },
      '/v1/schedules': {
        get: { summary: 'every schedule: counts, last snapshot, its age, the replication lag (never the standby\'s token)', responses: { 200: ok('{ schedules }'), ...errors } },
        post: { summary: 'add a schedule of periodic leave-running snapshots (its first taken before the answer)', requestBody: { required: true, ...json('ScheduleBody') }, responses: { 201: ok('{ schedule }'), 409: error, 422: error, ...errors } },
      },
      '/v1/schedules/{id}': { delete: { summary: 'stop a schedule (its snapshots and replicas stay)', parameters: [{ name: 'id', in: 'path', required: true, schema: { type: 'string', pattern: '^s-[0-9a-f]{12}$' } }], responses: { 200: ok('{ schedule }'), ...errors } } },
      '/v1/replicas': {
        get: { summary: 'the complete replicas this host holds, newest taken first', responses: { 200: ok('{ replicas }'), ...errors } },
        post: { summary: 'a source confirms a replica it sent (its snapshot must be sealed here)', requestBody: { required: true, ...json('ReplicaRecord') }, responses: { 201: ok('{ replica }'), ...errors } },
      },
      '/v1/replicas/{snapshot}': { delete: { summary: 'remove a replica\'s snapshot and record (a source\'s retention)', parameters: [param('snapshot', SnapshotId)], responses: { 200: ok('{ removed }'), ...errors } } },
      '/v1/failover': { post: { summary: 'restore the newest complete replica of a workload here, verified', requestBody: { required: true, ...json('FailoverBody') }, responses: { 200: ok('{ ok, workload, pid, replica, takenAt, replicaAgeMs, from, skipped, restoreMs, job }'), 409: error, 422: error, ...errors } } },
      '/v1/openapi.json': { get: { summary: 'this document', responses: { 200: ok('OpenAPI 3.1') } } },
      '/metrics': { get: { summary: 'Prometheus text exposition', responses: { 200: { description: 'text/plain; version=0.0.4', content: { 'text/plain': {} } } } } },
    },
  };
}
