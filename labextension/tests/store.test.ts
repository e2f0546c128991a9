import { IStoreChange, JobStore } from '../src/store';
import { deletion, event, job } from './helpers';

describe('JobStore', () => {
  it('keeps one summary per job and sorts newest first by default', () => {
    const store = new JobStore();
    const a = job({ submit_time: 10 });
    const b = job({ submit_time: 30 });
    const c = job({ submit_time: 20 });
    store.upsert([a, b, c]);
    store.upsert([{ ...a, name: 'renamed' }]);
    expect(store.size).toBe(3);
    expect(store.view().map(j => j.id)).toEqual([b.id, c.id, a.id]);
    expect(store.view({}, 'submit_time').map(j => j.id)).toEqual([a.id, c.id, b.id]);
    expect(store.get(a.id)?.name).toBe('renamed');
  });

  it('applies job events, updates counts and ignores replays', () => {
    const store = new JobStore();
    const a = job({ state: 'queued' });
    store.upsert([a]);
    expect(store.counts().queued).toBe(1);
    expect(store.applyEvent(event(5, a, 'running'))).toBe(true);
    expect(store.get(a.id)?.state).toBe('running');
    expect(store.counts()).toMatchObject({ queued: 0, running: 1 });
    expect(store.lastEventId).toBe(5);
    // A replay of an older event must not move the job back.
    expect(store.applyEvent(event(4, a, 'queued'))).toBe(false);
    expect(store.applyEvent(event(5, a, 'queued'))).toBe(false);
    expect(store.get(a.id)?.state).toBe('running');
    // An unknown job arriving by event is added.
    const b = job();
    store.applyEvent(event(6, b, 'waiting'));
    expect(store.get(b.id)?.state).toBe('waiting');
    expect(store.counts().waiting).toBe(1);
  });

  it('keeps the newer account of a job: fewer state changes is older, whatever arrives last', () => {
    const store = new JobStore();
    const a = job({ state: 'waiting', changes: 2 });
    store.upsert([a]);
    // The answer of the submit (or a list page) read before the job started comes in late.
    store.applyEvent(event(7, { ...a, changes: 3 }, 'running'));
    store.upsert([{ ...a, state: 'queued', state_code: 'Q', changes: 1 }]);
    expect(store.get(a.id)?.state).toBe('running');
    expect(store.counts()).toMatchObject({ queued: 0, waiting: 0, running: 1 });
    // Same count, other details (a site's note while running): taken.
    store.upsert([
      { ...a, state: 'running', state_code: 'R', changes: 3, state_details: 'node n1' }
    ]);
    expect(store.get(a.id)?.state_details).toBe('node n1');
  });

  it('filters by state, site and text', () => {
    const store = new JobStore();
    const jobs = [
      job({ name: 'train-resnet', state: 'running', site: 'cluster' }),
      job({ name: 'prep', state: 'finished', site: 'local' }),
      job({ name: 'train-bert', state: 'queued', site: 'local', native_id: '4242' })
    ];
    store.upsert(jobs);
    expect(
      store
        .view({ states: ['running', 'queued'] })
        .map(j => j.name)
        .sort()
    ).toEqual(['train-bert', 'train-resnet']);
    expect(
      store
        .view({ site: 'local' })
        .map(j => j.name)
        .sort()
    ).toEqual(['prep', 'train-bert']);
    expect(store.view({ text: 'TRAIN' }).length).toBe(2);
    expect(store.view({ text: '4242' }).map(j => j.name)).toEqual(['train-bert']);
    expect(store.view({ text: 'train', site: 'cluster' }).map(j => j.name)).toEqual([
      'train-resnet'
    ]);
    expect(store.sites()).toEqual(['cluster', 'local']);
  });

  it('recomputes a cached view after a change', () => {
    const store = new JobStore();
    const a = job({ state: 'queued' });
    store.upsert([a]);
    const before = store.view({ states: ['queued'] });
    expect(store.view({ states: ['queued'] })).toBe(before);
    store.applyEvent(event(1, a, 'running'));
    expect(store.view({ states: ['queued'] })).toHaveLength(0);
    expect(store.view({ states: ['running'] })).toHaveLength(1);
  });

  it('groups rows by state in lifecycle order and collapses groups', () => {
    const store = new JobStore();
    store.upsert([
      job({ state: 'finished' }),
      job({ state: 'running' }),
      job({ state: 'finished' }),
      job({ state: 'queued' })
    ]);
    const rows = store.rows({}, '-submit_time', 'state');
    const headers = rows
      .filter(r => r.kind === 'group')
      .map(r => (r.kind === 'group' ? `${r.label}:${r.count}` : ''));
    expect(headers).toEqual(['running:1', 'queued:1', 'finished:2']);
    expect(rows).toHaveLength(7);
    const collapsed = store.rows({}, '-submit_time', 'state', new Set(['state:finished']));
    expect(collapsed).toHaveLength(5);
    const last = collapsed[collapsed.length - 1];
    expect(last.kind === 'group' && last.collapsed).toBe(true);
    const bySite = store.rows({}, '-submit_time', 'site');
    expect(bySite[0]).toMatchObject({ kind: 'group', label: 'local', count: 4 });
  });

  it('reports jobs that end by live events, not by loads or replays', () => {
    const store = new JobStore();
    const a = job({ state: 'running' });
    const b = job({ state: 'running' });
    const done = job({ state: 'finished' });
    store.upsert([a, b, done]);
    const ended: string[] = [];
    store.changed.connect((_, change) => ended.push(...change.ended.map(j => j.id)));
    store.applyEvent(event(1, a, 'finished'));
    store.applyEvents([event(2, b, 'error')], false);
    store.applyEvent(event(3, done, 'finished'));
    store.upsert([{ ...a, state: 'finished' }]);
    expect(ended).toEqual([a.id]);
  });

  it('emits one change per batch', () => {
    const store = new JobStore();
    const jobs = Array.from({ length: 50 }, () => job());
    store.upsert(jobs);
    let signals = 0;
    let changedIds = 0;
    store.changed.connect((_, c) => {
      signals++;
      changedIds += c.changed.length;
    });
    store.applyEvents(jobs.map((j, i) => event(i + 1, j, 'running')));
    expect(signals).toBe(1);
    expect(changedIds).toBe(50);
    const v = store.version;
    store.applyEvents([event(60, jobs[0], 'running')]);
    expect(store.version).toBe(v);
  });

  it('serves a sorted filtered view of 10,000 jobs quickly', () => {
    const store = new JobStore();
    const jobs = Array.from({ length: 10000 }, (_, i) =>
      job({ state: i % 3 ? 'finished' : 'running', submit_time: Math.random() * 1e6 })
    );
    store.upsert(jobs);
    const t0 = performance.now();
    store.applyEvents(jobs.slice(0, 100).map((j, i) => event(i + 1, j, 'canceled')));
    const rows = store.rows({ text: 'job' }, '-submit_time', 'state');
    const dt = performance.now() - t0;
    expect(rows.length).toBe(10000 + 3);
    expect(store.counts().canceled).toBe(100);
    for (let i = 1; i < 100; i++) {
      const r0 = rows[i];
      const r1 = rows[i + 1];
      if (r0.kind === 'job' && r1.kind === 'job' && r0.job.state === r1.job.state) {
        expect(r0.job.submit_time).toBeGreaterThanOrEqual(r1.job.submit_time);
      }
    }
    expect(dt).toBeLessThan(250);
  });

  it('forgets a deleted job, with its tasks, once, and says which went', () => {
    const store = new JobStore();
    const array = job({ state: 'finished' });
    const tasks = [0, 1].map(i =>
      job({ state: 'finished', array_parent: array.id, array_index: i })
    );
    const other = job({ state: 'running' });
    store.upsert([array, ...tasks, other]);
    const changes: IStoreChange[] = [];
    store.changed.connect((_, c) => changes.push(c));
    expect(store.applyEvent(deletion(7, array))).toBe(true);
    expect(store.size).toBe(1);
    expect(store.has(array.id) || tasks.some(t => store.has(t.id))).toBe(false);
    expect(store.counts()).toMatchObject({ finished: 0, running: 1 });
    expect(store.lastEventId).toBe(7);
    expect(changes).toHaveLength(1);
    expect(new Set(changes[0].removed)).toEqual(new Set([array.id, ...tasks.map(t => t.id)]));
    expect(store.view().map(j => j.id)).toEqual([other.id]);
    // A replay of the deletion, or of an older event, changes nothing.
    expect(store.applyEvent(deletion(7, array))).toBe(false);
    expect(store.applyEvent(event(6, array, 'finished'))).toBe(false);
    expect(store.has(array.id)).toBe(false);
    // Deleting a job not held moves the event id on and signals nothing.
    expect(store.applyEvent(deletion(8, job()))).toBe(false);
    expect(store.lastEventId).toBe(8);
    expect(changes).toHaveLength(1);
  });

  it('does not report a job deleted in the same batch as ended', () => {
    const store = new JobStore();
    const a = job({ state: 'running' });
    store.upsert([a]);
    const changes: IStoreChange[] = [];
    store.changed.connect((_, c) => changes.push(c));
    store.applyEvents([event(1, a, 'finished'), deletion(2, a)]);
    expect(changes).toHaveLength(1);
    expect(changes[0].ended).toEqual([]);
    expect(changes[0].removed).toEqual([a.id]);
  });
});
