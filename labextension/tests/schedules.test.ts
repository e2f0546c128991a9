import { SwmApi, SwmApiError } from '../src/api';
import { IWebSocketLike } from '../src/events';
import { JobStore } from '../src/store';
import { JobSync } from '../src/sync';
import {
  ISchedule,
  IScheduleRunEvent,
  ScheduleClient,
  ScheduleModel,
  lastRunText,
  runFailed,
  runNotice,
  whenText
} from '../src/schedules';
import { reply } from './helpers';

type Call = { path: string; init: RequestInit };

function schedule(overrides: Partial<ISchedule> = {}): ISchedule {
  return {
    id: 'sched-1',
    name: 'nightly',
    owner: 'ana',
    cron: null,
    timezone: 'UTC',
    every: '10m',
    paused: false,
    next_due: 1764070600,
    last_due: 1764070000,
    max_concurrent: 1,
    overlap: 'skip',
    catch_up: 'last',
    keep_last: null,
    notify_on: 'failure',
    job: { command: ['true'] },
    ...overrides
  };
}

function fake(responses: Response[]): { client: ScheduleClient; calls: Call[] } {
  const calls: Call[] = [];
  const client = new ScheduleClient(async (path, init) => {
    calls.push({ path, init });
    const next = responses.shift();
    if (!next) {
      throw new Error('no more responses');
    }
    return next;
  });
  return { client, calls };
}

function runEvent(overrides: Partial<IScheduleRunEvent> = {}): IScheduleRunEvent {
  return {
    type: 'schedule_run',
    schedule: { id: 'sched-1', name: 'nightly', owner: 'ana', next_due: 1764071200 },
    run: {
      due_time: 1764070600,
      status: 'launched',
      job_id: 'job-9',
      state: 'error',
      exit_code: 2
    },
    ended: true,
    notify: true,
    ...overrides
  };
}

describe('ScheduleClient', () => {
  it('calls the schedules routes', async () => {
    const { client, calls } = fake([
      reply(200, { schedules: [schedule()] }),
      reply(200, schedule({ paused: true })),
      reply(200, schedule()),
      reply(201, { due_time: 1, status: 'launched', job_id: 'j', manual: true })
    ]);
    expect((await client.list())[0].name).toBe('nightly');
    expect((await client.pause('sched-1')).paused).toBe(true);
    await client.resume('sched-1');
    expect((await client.runNow('sched-1')).job_id).toBe('j');
    expect(calls.map(c => `${c.init.method ?? 'GET'} ${c.path}`)).toEqual([
      'GET schedules',
      'POST schedules/sched-1/pause',
      'POST schedules/sched-1/resume',
      'POST schedules/sched-1/run'
    ]);
  });

  it("surfaces the server's refusal", async () => {
    const { client } = fake([
      reply(409, { message: 'the schedule sched-1 is not paused', errors: [] })
    ]);
    const err = await client.resume('sched-1').catch(e => e);
    expect(err).toBeInstanceOf(SwmApiError);
    expect(err.status).toBe(409);
    expect(err.message).toContain('not paused');
  });
});

describe('ScheduleModel', () => {
  it('loads, then follows schedule and run events', async () => {
    const { client } = fake([
      reply(200, { schedules: [schedule(), schedule({ id: 's2', name: 'a-first' })] })
    ]);
    const model = new ScheduleModel(client);
    let changes = 0;
    model.changed.connect(() => changes++);
    await model.load();
    expect(model.schedules.map(s => s.name)).toEqual(['a-first', 'nightly']);

    expect(model.applyEvent(runEvent())).toBe(true);
    const nightly = model.schedules[1];
    expect(nightly.last_run?.job_id).toBe('job-9');
    expect(nightly.next_due).toBe(1764071200);
    // an older run's event does not replace the newer last run
    model.applyEvent(runEvent({ run: { due_time: 1, status: 'missed' } }));
    expect(model.schedules[1].last_run?.due_time).toBe(1764070600);

    model.applyEvent({
      type: 'schedule',
      action: 'paused',
      schedule: schedule({ paused: true })
    } as {
      type: string;
    });
    expect(model.schedules[1].paused).toBe(true);
    expect(model.schedules[1].last_run?.job_id).toBe('job-9');
    model.applyEvent({ type: 'schedule', action: 'deleted', schedule: schedule() } as {
      type: string;
    });
    expect(model.schedules.map(s => s.id)).toEqual(['s2']);
    expect(model.applyEvent({ type: 'job' })).toBe(false);
    expect(changes).toBe(5);
  });

  it('keeps a load error to show', async () => {
    const { client } = fake([
      reply(503, { message: 'the workload manager is not running', errors: [] })
    ]);
    const model = new ScheduleModel(client);
    await model.load();
    expect(model.error).toContain('not running');
  });
});

describe('texts', () => {
  it('says when, how the last run went, and what to notify', () => {
    expect(whenText(schedule())).toBe('every 10m');
    expect(whenText(schedule({ every: 30 }))).toBe('every 30s');
    expect(whenText(schedule({ cron: '0 9 * * *', timezone: 'Europe/Berlin' }))).toBe(
      'cron 0 9 * * * (Europe/Berlin)'
    );
    expect(lastRunText(undefined)).toBe('—');
    expect(lastRunText({ due_time: 1, status: 'skipped' })).toBe('skipped');
    expect(lastRunText({ due_time: 1, status: 'launched', state: 'finished', exit_code: 0 })).toBe(
      'finished 0'
    );
    expect(runFailed({ due_time: 1, status: 'launched', state: 'finished', exit_code: 1 })).toBe(
      true
    );
    expect(runFailed({ due_time: 1, status: 'launched', state: 'finished', exit_code: 0 })).toBe(
      false
    );
    expect(runFailed({ due_time: 1, status: 'failed' })).toBe(true);

    expect(runNotice(runEvent())).toEqual({
      message: 'Schedule nightly: run failed (error, exit 2)',
      type: 'error'
    });
    expect(runNotice(runEvent({ notify: false }))).toBeNull();
    expect(
      runNotice(
        runEvent({ run: { due_time: 1, status: 'launched', state: 'finished', exit_code: 0 } })
      )
    ).toEqual({ message: 'Schedule nightly: run finished', type: 'success' });
  });
});

describe('JobSync and schedules', () => {
  it('hands schedule events to the schedules model, job events to the job store', async () => {
    let onmessage: ((ev: { data: unknown }) => void) | null = null;
    const socket = {
      readyState: 1,
      send: () => undefined,
      close: () => undefined,
      onopen: null,
      onclose: null,
      onerror: null,
      set onmessage(fn: ((ev: { data: unknown }) => void) | null) {
        onmessage = fn;
      },
      get onmessage() {
        return onmessage;
      }
    } as unknown as IWebSocketLike;
    const api = new SwmApi(async () =>
      reply(200, { jobs: [], total: 0, counts: {}, next_cursor: null })
    );
    const sync = new JobSync({
      api,
      store: new JobStore(),
      wsUrl: 'ws://x',
      socketFactory: () => socket
    });
    const { client } = fake([reply(200, { schedules: [schedule()] })]);
    const model = new ScheduleModel(client);
    await model.load();
    const other: string[] = [];
    sync.otherEvent.connect((_, e) => {
      other.push(e.type);
      model.applyEvent(e);
    });
    await sync.start();
    const send = (m: unknown): void => onmessage?.({ data: JSON.stringify(m) });
    send({ type: 'hello', last_event_id: 1 });
    send({ id: 2, ...runEvent() });
    send({ id: 3, type: 'schedule', action: 'paused', schedule: schedule({ paused: true }) });
    expect(other).toEqual(['schedule_run', 'schedule']);
    expect(model.schedules[0].paused).toBe(true);
    expect(model.schedules[0].last_run?.state).toBe('error');
  });
});
