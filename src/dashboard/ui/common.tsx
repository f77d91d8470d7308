// Pieces every view uses: the error box (the CLI's code, message and hint), a loader hook, the
// confirmation dialog, a state shown as a symbol and a word (never colour alone), and a chart.
import type { ComponentChildren } from 'preact';
import { useCallback, useEffect, useRef, useState } from 'preact/hooks';
import { errorView, type ErrorView } from '../model.js';
import type { Spec } from '../charts.js';

export function ErrorBox({ error, title }: { error: unknown; title?: string }) {
  if (error === undefined || error === null) return null;
  const e: ErrorView = errorView(error);
  return (
    <div class="error" role="alert">
      <p><strong>{title ?? 'Error'}</strong> <code>{e.code}</code>: {e.message}</p>
      {e.hint ? <p class="hint">hint: {e.hint}</p> : null}
    </div>
  );
}

export interface Loaded<T> { data: T | undefined; error: unknown; loading: boolean; reload: () => void }

/** Loads `fn` now, again on reload(), and every `everyMs` while mounted (if given). */
export function useLoad<T>(fn: () => Promise<T>, deps: unknown[], everyMs?: number): Loaded<T> {
  const [data, setData] = useState<T | undefined>(undefined);
  const [error, setError] = useState<unknown>(undefined);
  const [loading, setLoading] = useState(true);
  const [tick, setTick] = useState(0);
  const reload = useCallback(() => setTick((t) => t + 1), []);
  useEffect(() => {
    let live = true;
    setLoading(true);
    fn().then((d) => { if (live) { setData(d); setError(undefined); } }, (e: unknown) => { if (live) setError(e); })
      .finally(() => { if (live) setLoading(false); });
    return () => { live = false; };
  }, [...deps, tick]);
  useEffect(() => {
    if (!everyMs) return;
    const t = setInterval(reload, everyMs);
    return () => clearInterval(t);
  }, [everyMs, reload]);
  return { data, error, loading, reload };
}

/**
 * A modal confirmation (the native <dialog>: focus moves into it, Escape closes it). The action
 * runs on confirm; its error is shown inside, the dialog stays open.
 */
export function Confirm(props: { title: string; confirmLabel: string; onConfirm: () => Promise<void>; onClose: () => void; children?: ComponentChildren; canConfirm?: boolean; danger?: boolean }) {
  const ref = useRef<HTMLDialogElement>(null);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(undefined);
  useEffect(() => {
    const d = ref.current;
    if (d && !d.open) d.showModal();
    const cancel = (e: Event) => { e.preventDefault(); if (!busy) props.onClose(); };
    d?.addEventListener('cancel', cancel);
    return () => d?.removeEventListener('cancel', cancel);
  }, [busy]);
  const confirm = async () => {
    setBusy(true);
    setError(undefined);
    try {
      await props.onConfirm();
    } catch (err) {
      setError(err);
      setBusy(false);
    }
  };
  const titleId = `dlg-${props.title.replace(/[^a-z0-9]+/gi, '-').toLowerCase()}`;
  return (
    <dialog ref={ref} aria-labelledby={titleId} class="confirm">
      <h2 id={titleId}>{props.title}</h2>
      {props.children}
      <ErrorBox error={error} title="Refused" />
      <div class="buttons">
        <button type="button" onClick={props.onClose} disabled={busy}>Cancel</button>
        <button type="button" class={props.danger ? 'danger' : 'primary'} onClick={() => void confirm()} disabled={busy || props.canConfirm === false}>
          {busy ? 'Working…' : props.confirmLabel}
        </button>
      </div>
    </dialog>
  );
}

const SYMBOL: Record<string, string> = {
  running: '▶', succeeded: '✔', committed: '✔', up: '✔', queued: '⏳', failed: '✖', down: '✖', 'rolled back': '↩',
  cancelled: '⊘', stopped: '■', exited: '■', done: '✔', uncertain: '?', unknown: '?',
};

/** A state as a symbol and its word: readable without colour; the class adds colour for those who see it. */
export function StateText({ state }: { state: string }) {
  return <span class={`state state-${state.replace(/\s+/g, '-')}`}><span aria-hidden="true">{SYMBOL[state] ?? '•'} </span>{state}</span>;
}

/** A vega-lite chart, drawn as SVG once vega is loaded (its own chunk, fetched when a chart is first shown). */
export function Chart({ spec, id, caption }: { spec: Spec; id: string; caption: string }) {
  const ref = useRef<HTMLDivElement>(null);
  const [error, setError] = useState<unknown>(undefined);
  const key = JSON.stringify(spec);
  useEffect(() => {
    let finalize: (() => void) | undefined;
    let live = true;
    import('./vega-draw.js')
      .then(async ({ draw }) => { if (live && ref.current) finalize = await draw(ref.current, spec); })
      .catch((e: unknown) => { if (live) setError(e); });
    return () => { live = false; finalize?.(); };
  }, [key]);
  return (
    <figure class="chart" data-chart={id}>
      <div ref={ref} class="chart-body" />
      <figcaption>{caption}</figcaption>
      <ErrorBox error={error} title="Chart not drawn" />
    </figure>
  );
}
