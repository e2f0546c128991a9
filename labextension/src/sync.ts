/**
 * JobSync keeps a JobStore in step with the server: one full load over REST (page by page),
 * then live updates from the events websocket. No per-job polling: after the load, only
 * websocket events change the store (plus the answers of the user's own submits and actions);
 * a `job_deleted` event removes the job (another tab, `swm rm` or retention deleted it).
 */
import { ISignal, Signal } from '@lumino/signaling';

import { SwmApi, SwmApiError } from './api';
import { ConnectionStatus, EventsConnection, SocketFactory } from './events';
import { JobStore } from './store';
import type { JobListEvent, LogStreamEvent, ServerEvent } from './types';

export interface IJobSyncOptions {
  api: SwmApi;
  store: JobStore;
  wsUrl: string;
  token?: string;
  socketFactory: SocketFactory;
}

export class JobSync {
  readonly api: SwmApi;
  readonly store: JobStore;
  private _events: EventsConnection;
  private _loaded = false;
  private _loading: Promise<void> | null = null;
  private _buffer: JobListEvent[] = [];
  private _logListeners = new Map<string, Set<(e: LogStreamEvent) => void>>();
  private _statusChanged = new Signal<this, ConnectionStatus>(this);
  private _loadError: SwmApiError | null = null;
  private _loadedSignal = new Signal<this, void>(this);
  private _owner = '';
  private _otherEvent = new Signal<this, { type: string }>(this);

  constructor(opts: IJobSyncOptions) {
    this.api = opts.api;
    this.store = opts.store;
    this._events = new EventsConnection({
      url: opts.wsUrl,
      token: opts.token,
      factory: opts.socketFactory,
      onEvent: e => this._onEvent(e),
      onStatus: s => this._statusChanged.emit(s),
      lastEventId: () => this.store.lastEventId
    });
  }

  get status(): ConnectionStatus {
    return this._events.status;
  }

  get statusChanged(): ISignal<this, ConnectionStatus> {
    return this._statusChanged;
  }

  /** Emitted when the first full load is done (or failed: see `loadError`). */
  get loadedChanged(): ISignal<this, void> {
    return this._loadedSignal;
  }

  get loaded(): boolean {
    return this._loaded;
  }

  get loadError(): SwmApiError | null {
    return this._loadError;
  }

  /** Events of other kinds than jobs and logs (e.g. `schedule`, `schedule_run`), for the parts that follow them. */
  get otherEvent(): ISignal<this, { type: string }> {
    return this._otherEvent;
  }

  /** The owner name of this user's jobs, as the server's hello says ('' until it has said so). */
  get owner(): string {
    return this._owner;
  }

  /** Open the websocket and load the list once. Calling again returns the same promise. */
  start(): Promise<void> {
    if (!this._loading) {
      this._events.connect();
      this._loading = this._load();
    }
    return this._loading;
  }

  /** Load the list again (after an error). */
  reload(): Promise<void> {
    this._loaded = false;
    this._loading = this._load();
    return this._loading;
  }

  subscribeLogs(id: string, fn: (e: LogStreamEvent) => void): () => void {
    let set = this._logListeners.get(id);
    if (!set) {
      set = new Set();
      this._logListeners.set(id, set);
    }
    set.add(fn);
    this._events.subscribeLogs(id);
    return () => {
      set?.delete(fn);
      this._events.unsubscribeLogs(id);
    };
  }

  dispose(): void {
    this._events.dispose();
  }

  private async _load(): Promise<void> {
    this._loadError = null;
    try {
      await this.api.listAllJobs(page => this.store.upsert(page.jobs), { sort: '-submit_time' });
    } catch (e) {
      this._loadError = e instanceof SwmApiError ? e : new SwmApiError(String(e), 0);
    }
    this._loaded = true;
    const buffered = this._buffer;
    this._buffer = [];
    // In order: a job's newest account over the pages' snapshots; a deletion after them.
    this.store.batch(() => {
      for (const e of buffered) {
        if (e.type === 'job_deleted') {
          this.store.remove([e.job.id]);
        } else {
          this.store.upsert([e.job]);
        }
      }
    });
    this._loadedSignal.emit();
  }

  private _onEvent(event: ServerEvent): void {
    switch (event.type) {
      case 'hello':
        if (typeof event.owner === 'string') {
          this._owner = event.owner;
        }
        if (typeof event.last_event_id === 'number' && this.store.lastEventId === 0) {
          this.store.setLastEventId(event.last_event_id);
        }
        break;
      case 'job':
      case 'job_deleted':
        if (this._loaded) {
          this.store.applyEvent(event);
        } else {
          // Shown at once (a job submitted while a long list loads must not look stuck), and
          // applied again after the load, over any older snapshot a page brought meanwhile.
          if (typeof event.id !== 'number' || event.id > this.store.lastEventId) {
            this._buffer.push(event);
          }
          this.store.applyEvent(event, false);
        }
        break;
      case 'resync':
        // Every event up to last_event_id reached this client before the message: replay from there.
        if (typeof event.last_event_id === 'number') {
          this.store.setLastEventId(event.last_event_id);
        }
        break;
      case 'reload':
        // Some events it missed are gone from the server: the list is loaded again instead.
        if (this._loaded) {
          void this.reload();
        }
        break;
      case 'log':
      case 'log_end':
        for (const fn of this._logListeners.get(event.job_id) ?? []) {
          fn(event);
        }
        break;
      case 'error':
        if (event.job_id) {
          for (const fn of this._logListeners.get(event.job_id) ?? []) {
            fn(event);
          }
        } else {
          console.warn('swm-jupyter: events socket:', event.message);
        }
        break;
      default:
        this._otherEvent.emit(event as { type: string });
    }
  }
}
