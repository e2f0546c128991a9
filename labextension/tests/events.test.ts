import { EventsConnection, IWebSocketLike } from '../src/events';
import type { ServerEvent } from '../src/types';

class FakeSocket implements IWebSocketLike {
  readyState = 0;
  sent: unknown[] = [];
  closed = false;
  onopen: ((ev: unknown) => void) | null = null;
  onmessage: ((ev: { data: unknown }) => void) | null = null;
  onclose: ((ev: unknown) => void) | null = null;
  onerror: ((ev: unknown) => void) | null = null;
  constructor(readonly url: string) {}
  send(data: string): void {
    this.sent.push(JSON.parse(data));
  }
  close(): void {
    this.closed = true;
  }
  open(): void {
    this.readyState = 1;
    this.onopen?.({});
  }
  drop(): void {
    this.readyState = 3;
    this.onclose?.({});
  }
  message(data: unknown): void {
    this.onmessage?.({ data: typeof data === 'string' ? data : JSON.stringify(data) });
  }
}

function setup(token?: string) {
  const sockets: FakeSocket[] = [];
  const timers: Array<{ fn: () => void; ms: number }> = [];
  const events: ServerEvent[] = [];
  let last = 0;
  const conn = new EventsConnection({
    url: 'ws://h/base/swm/api/v1/events',
    token,
    factory: url => {
      const s = new FakeSocket(url);
      sockets.push(s);
      return s;
    },
    onEvent: e => {
      events.push(e);
      if (e.type === 'job') {
        last = e.id;
      }
    },
    lastEventId: () => last,
    initialDelayMs: 100,
    maxDelayMs: 400,
    timers: { set: (fn, ms) => timers.push({ fn, ms }), clear: () => undefined }
  });
  return { conn, sockets, timers, events };
}

describe('EventsConnection', () => {
  it('connects with the token and parses messages, ignoring garbage', () => {
    const { conn, sockets, events } = setup('s3cret/+');
    conn.connect();
    expect(sockets[0].url).toBe('ws://h/base/swm/api/v1/events?token=s3cret%2F%2B');
    sockets[0].open();
    expect(conn.status).toBe('live');
    sockets[0].message({ type: 'hello', last_event_id: 3 });
    sockets[0].message('not json');
    sockets[0].message({ no: 'type' });
    expect(events).toEqual([{ type: 'hello', last_event_id: 3 }]);
  });

  it('reconnects with backoff and asks for a replay after the last event', () => {
    const { conn, sockets, timers } = setup();
    conn.connect();
    sockets[0].open();
    expect(sockets[0].url).toBe('ws://h/base/swm/api/v1/events');
    sockets[0].message({ id: 41, type: 'job', time: 1, job: {} });
    sockets[0].drop();
    expect(conn.status).toBe('offline');
    expect(timers.map(t => t.ms)).toEqual([100]);
    timers[0].fn();
    expect(sockets[1].url).toBe('ws://h/base/swm/api/v1/events?last_event_id=41');
    sockets[1].drop();
    timers[1].fn();
    sockets[2].drop();
    timers[2].fn();
    sockets[3].drop();
    expect(timers.map(t => t.ms)).toEqual([100, 200, 400, 400]);
    timers[3].fn();
    sockets[4].open();
    sockets[4].drop();
    expect(timers[4].ms).toBe(100);
  });

  it('reference-counts log subscriptions and re-sends them after a reconnect', () => {
    const { conn, sockets, timers } = setup();
    conn.connect();
    sockets[0].open();
    conn.subscribeLogs('a');
    conn.subscribeLogs('a');
    conn.subscribeLogs('b');
    expect(sockets[0].sent).toEqual([{ subscribe_logs: ['a'] }, { subscribe_logs: ['b'] }]);
    conn.unsubscribeLogs('a');
    expect(sockets[0].sent).toHaveLength(2);
    conn.unsubscribeLogs('a');
    expect(sockets[0].sent[2]).toEqual({ unsubscribe_logs: ['a'] });
    sockets[0].drop();
    timers[0].fn();
    sockets[1].open();
    expect(sockets[1].sent).toEqual([{ subscribe_logs: ['b'] }]);
  });

  it('stops reconnecting once disposed', () => {
    const { conn, sockets, timers } = setup();
    conn.connect();
    sockets[0].open();
    conn.dispose();
    expect(sockets[0].closed).toBe(true);
    expect(timers).toHaveLength(0);
    conn.connect();
    expect(sockets).toHaveLength(1);
  });
});
