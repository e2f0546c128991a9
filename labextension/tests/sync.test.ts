import { SwmApi } from '../src/api';
import { IWebSocketLike } from '../src/events';
import { JobStore } from '../src/store';
import { JobSync } from '../src/sync';
import { deletion, event, job, reply } from './helpers';

class Socket implements IWebSocketLike {
  readyState = 1;
  sent: string[] = [];
  onopen: ((ev: unknown) => void) | null = null;
  onmessage: ((ev: { data: unknown }) => void) | null = null;
  onclose: ((ev: unknown) => void) | null = null;
  onerror: ((ev: unknown) => void) | null = null;
  send(d: string): void {
    this.sent.push(d);
  }
  close(): void {
    /* nothing */
  }
  emit(m: unknown): void {
    this.onmessage?.({ data: JSON.stringify(m) });
  }
}

describe('JobSync', () => {
  it('shows events that arrive during the first load at once, and keeps them over the older pages', async () => {
    // `a` carries `changes` (the server's count of state changes); `b` does not (an older server).
    const a = job({ state: 'queued', changes: 1 });
    const b = job({ state: 'running' });
    let release: () => void = () => undefined;
    const gate = new Promise<void>(r => (release = r));
    const requests: string[] = [];
    const api = new SwmApi(async path => {
      requests.push(path);
      await gate;
      // The page was read before the events below: older accounts of both jobs.
      return reply(200, { jobs: [a, b], total: 2, counts: {}, next_cursor: null });
    });
    const socket = new Socket();
    const store = new JobStore();
    const sync = new JobSync({
      api,
      store,
      wsUrl: 'ws://x/swm/api/v1/events',
      socketFactory: () => socket
    });
    const done = sync.start();
    socket.onopen?.({});
    socket.emit({ type: 'hello', last_event_id: 10 });
    socket.emit(event(9, { ...a, changes: 4 }, 'canceled')); // older than hello: a replay, skipped
    socket.emit(event(11, { ...a, changes: 3 }, 'running'));
    socket.emit(event(12, b, 'finished'));
    // Shown while the list is still loading (a long list must not hide a job's progress).
    expect(store.get(a.id)?.state).toBe('running');
    expect(store.get(b.id)?.state).toBe('finished');
    release();
    await done;
    expect(store.get(a.id)?.state).toBe('running');
    expect(store.get(b.id)?.state).toBe('finished');
    expect(store.lastEventId).toBe(12);
    socket.emit(event(13, { ...a, changes: 4 }, 'finished'));
    expect(store.get(a.id)?.state).toBe('finished');
    // Only the one list request: live updates need no polling.
    expect(requests).toEqual(['jobs?sort=-submit_time&limit=1000&offset=0']);
  });

  it('routes log events to the subscribers of that job', async () => {
    const api = new SwmApi(async () =>
      reply(200, { jobs: [], total: 0, counts: {}, next_cursor: null })
    );
    const socket = new Socket();
    const sync = new JobSync({
      api,
      store: new JobStore(),
      wsUrl: 'ws://x',
      socketFactory: () => socket
    });
    await sync.start();
    socket.onopen?.({});
    const got: string[] = [];
    const off = sync.subscribeLogs('j1', e => got.push(e.type === 'log' ? e.data : e.type));
    expect(socket.sent).toContain(JSON.stringify({ subscribe_logs: ['j1'] }));
    socket.emit({ type: 'log', job_id: 'j1', stream: 'stdout', offset: 0, data: 'hello\n' });
    socket.emit({ type: 'log', job_id: 'j2', stream: 'stdout', offset: 0, data: 'other\n' });
    socket.emit({ type: 'log_end', job_id: 'j1', offsets: { stdout: 6, stderr: 0 } });
    off();
    socket.emit({ type: 'log', job_id: 'j1', stream: 'stdout', offset: 6, data: 'late\n' });
    expect(got).toEqual(['hello\n', 'log_end']);
    expect(socket.sent).toContain(JSON.stringify({ unsubscribe_logs: ['j1'] }));
  });

  it('keeps the server message when the load fails', async () => {
    const api = new SwmApi(async () =>
      reply(503, { message: 'store is locked by another server' })
    );
    const sync = new JobSync({
      api,
      store: new JobStore(),
      wsUrl: 'ws://x',
      socketFactory: () => new Socket()
    });
    await sync.start();
    expect(sync.loadError?.message).toBe('store is locked by another server');
  });

  it('drops a job deleted elsewhere, live or while the list loads', async () => {
    const a = job({ state: 'finished' });
    const b = job({ state: 'finished' });
    const c = job({ state: 'canceled' });
    let release: () => void = () => undefined;
    const gate = new Promise<void>(r => (release = r));
    const api = new SwmApi(async () => {
      await gate;
      return reply(200, { jobs: [a, b, c], total: 3, counts: {}, next_cursor: null });
    });
    const socket = new Socket();
    const store = new JobStore();
    const sync = new JobSync({ api, store, wsUrl: 'ws://x', socketFactory: () => socket });
    const done = sync.start();
    socket.onopen?.({});
    socket.emit({ type: 'hello', last_event_id: 20 });
    // Deleted while the first page was on its way (the page still has it): applied after the load.
    socket.emit(deletion(21, a));
    release();
    await done;
    expect(store.has(a.id)).toBe(false);
    expect(store.size).toBe(2);
    socket.emit(deletion(22, b));
    expect(store.has(b.id)).toBe(false);
    expect(store.lastEventId).toBe(22); // a reconnection asks for what came after it
    expect(store.has(c.id)).toBe(true);
  });
});
