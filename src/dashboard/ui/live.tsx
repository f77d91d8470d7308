// Follows one job live: its event stream (GET /v1/jobs/:id/events) read with fetch — the token
// goes in the Authorization header, which EventSource cannot send — through the typed client.
import { useEffect, useState } from 'preact/hooks';
import { applyEvent, emptyLive, type LiveJob } from '../model.js';
import type { Api } from './api.js';

export function useLiveJob(api: Api, id: string | undefined): { live: LiveJob; error: unknown } {
  const [live, setLive] = useState<LiveJob>(emptyLive());
  const [error, setError] = useState<unknown>(undefined);
  useEffect(() => {
    setLive(emptyLive());
    setError(undefined);
    if (!id) return;
    const stop = new AbortController();
    void (async () => {
      try {
        // The record first (a finished job's stream replays it all the same).
        const job = await api.client.job(id);
        if (stop.signal.aborted) return;
        setLive((l) => ({ ...l, job, phases: job.phases }));
        let next = emptyLive();
        next = { ...next, job };
        for await (const e of api.client.events(id, stop.signal)) {
          next = applyEvent(next, e, Date.now());
          const snap = next;
          setLive(snap);
        }
      } catch (err) {
        if (!stop.signal.aborted) setError(err);
      }
    })();
    return () => stop.abort();
  }, [api, id]);
  return { live, error };
}
