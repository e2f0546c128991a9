/**
 * EventsConnection: the one websocket to `/swm/api/v1/events`. It reconnects with capped
 * backoff, asks for a replay with `last_event_id` after a drop, and re-sends log subscriptions.
 * A `resync` message (the client fell too far behind) makes it reconnect at once.
 */
import type { ServerEvent } from './types';

/** The part of the browser's WebSocket used here (tests pass a fake). */
export interface IWebSocketLike {
  readonly readyState: number;
  onopen: ((ev: unknown) => void) | null;
  onmessage: ((ev: { data: unknown }) => void) | null;
  onclose: ((ev: unknown) => void) | null;
  onerror: ((ev: unknown) => void) | null;
  send(data: string): void;
  close(): void;
}

export type SocketFactory = (url: string) => IWebSocketLike;

export type ConnectionStatus = 'connecting' | 'live' | 'offline';

export interface IEventsOptions {
  /** The websocket URL without query (e.g. `ws://host/base/swm/api/v1/events`). */
  url: string;
  /** Jupyter token, appended as `?token=` when set. */
  token?: string;
  factory: SocketFactory;
  /** Called with every parsed message. */
  onEvent: (event: ServerEvent) => void;
  onStatus?: (status: ConnectionStatus) => void;
  /** Last event id the caller holds, read at each (re)connection. */
  lastEventId: () => number;
  initialDelayMs?: number;
  maxDelayMs?: number;
  timers?: {
    set: (fn: () => void, ms: number) => unknown;
    clear: (handle: unknown) => void;
  };
}

const OPEN = 1;

export class EventsConnection {
  private _socket: IWebSocketLike | null = null;
  private _logs = new Map<string, number>();
  private _delay: number;
  private _timer: unknown = null;
  private _disposed = false;
  private _connectedOnce = false;
  private _reconnectNow = false;
  private _status: ConnectionStatus = 'offline';
  private readonly _timers: NonNullable<IEventsOptions['timers']>;

  constructor(private readonly _opts: IEventsOptions) {
    this._delay = _opts.initialDelayMs ?? 1000;
    this._timers = _opts.timers ?? {
      set: (fn, ms) => setTimeout(fn, ms),
      clear: h => clearTimeout(h as ReturnType<typeof setTimeout>)
    };
  }

  get status(): ConnectionStatus {
    return this._status;
  }

  /** The URL of the next connection, with `last_event_id` after the first and the token. */
  url(): string {
    const params: string[] = [];
    const last = this._opts.lastEventId();
    if (this._connectedOnce && last > 0) {
      params.push(`last_event_id=${last}`);
    }
    if (this._opts.token) {
      params.push(`token=${encodeURIComponent(this._opts.token)}`);
    }
    return params.length ? `${this._opts.url}?${params.join('&')}` : this._opts.url;
  }

  connect(): void {
    if (this._disposed || this._socket) {
      return;
    }
    this._setStatus('connecting');
    let socket: IWebSocketLike;
    try {
      socket = this._opts.factory(this.url());
    } catch {
      this._scheduleReconnect();
      return;
    }
    this._socket = socket;
    socket.onopen = () => {
      this._delay = this._opts.initialDelayMs ?? 1000;
      this._connectedOnce = true;
      this._setStatus('live');
      const ids = [...this._logs.keys()];
      if (ids.length) {
        this._send({ subscribe_logs: ids });
      }
    };
    socket.onmessage = ev => {
      if (typeof ev.data !== 'string') {
        return;
      }
      let parsed: unknown;
      try {
        parsed = JSON.parse(ev.data);
      } catch {
        return;
      }
      if (parsed && typeof parsed === 'object' && 'type' in parsed) {
        const event = parsed as ServerEvent;
        this._opts.onEvent(event);
        if (event.type === 'resync') {
          // The server closes this socket next; reconnect without waiting, from the last event.
          this._reconnectNow = true;
        }
      }
    };
    socket.onclose = () => {
      if (this._socket === socket) {
        this._socket = null;
        this._scheduleReconnect();
      }
    };
    socket.onerror = () => {
      // onclose follows and schedules the reconnection.
    };
  }

  /** Ask for log events of `id` (reference-counted: two viewers, one subscription). */
  subscribeLogs(id: string): void {
    const n = this._logs.get(id) ?? 0;
    this._logs.set(id, n + 1);
    if (n === 0) {
      this._send({ subscribe_logs: [id] });
    }
  }

  unsubscribeLogs(id: string): void {
    const n = this._logs.get(id) ?? 0;
    if (n <= 1) {
      this._logs.delete(id);
      if (n === 1) {
        this._send({ unsubscribe_logs: [id] });
      }
    } else {
      this._logs.set(id, n - 1);
    }
  }

  dispose(): void {
    this._disposed = true;
    if (this._timer !== null) {
      this._timers.clear(this._timer);
      this._timer = null;
    }
    const socket = this._socket;
    this._socket = null;
    if (socket) {
      socket.onclose = null;
      socket.close();
    }
    this._setStatus('offline');
  }

  private _send(message: unknown): void {
    if (this._socket && this._socket.readyState === OPEN) {
      this._socket.send(JSON.stringify(message));
    }
  }

  private _scheduleReconnect(): void {
    this._setStatus('offline');
    if (this._disposed || this._timer !== null) {
      return;
    }
    const delay = this._reconnectNow ? 0 : this._delay;
    if (this._reconnectNow) {
      this._reconnectNow = false;
    } else {
      this._delay = Math.min(this._delay * 2, this._opts.maxDelayMs ?? 30000);
    }
    this._timer = this._timers.set(() => {
      this._timer = null;
      this.connect();
    }, delay);
  }

  private _setStatus(status: ConnectionStatus): void {
    if (status !== this._status) {
      this._status = status;
      this._opts.onStatus?.(status);
    }
  }
}
