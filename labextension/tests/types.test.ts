import { notifyWhen } from '../src/plugin/settings';
import { JobStore } from '../src/store';
import { badgeOf, isFailed, shownState } from '../src/types';
import { job } from './helpers';

describe('failed jobs', () => {
  it('are the non-zero finishes and the errors', () => {
    expect(isFailed(job({ state: 'finished', exit_code: 2 }))).toBe(true);
    expect(isFailed(job({ state: 'error', exit_code: null }))).toBe(true);
    expect(isFailed(job({ state: 'finished', exit_code: 0 }))).toBe(false);
    expect(isFailed(job({ state: 'finished', exit_code: null }))).toBe(false);
    expect(isFailed(job({ state: 'canceled', exit_code: 143 }))).toBe(false);
    expect(shownState(job({ state: 'finished', exit_code: 2 }))).toBe('failed');
    expect(shownState(job({ state: 'finished', exit_code: 0 }))).toBe('finished');
  });

  it('wear the failed badge with the exit code in its title', () => {
    const b = badgeOf(job({ state: 'finished', exit_code: 2 }));
    expect(b.className).toContain('swm-state-failed');
    expect(b.title).toBe('failed (exit code 2)');
    expect(badgeOf(job({ state: 'finished', exit_code: 0 })).className).not.toContain('failed');
  });

  it('are what the failed filter keeps', () => {
    const store = new JobStore();
    store.upsert([
      job({ id: 'a', state: 'finished', exit_code: 2 }),
      job({ id: 'b', state: 'finished', exit_code: 0 }),
      job({ id: 'c', state: 'error' }),
      job({ id: 'd', state: 'running' })
    ]);
    const ids = store.view({ states: ['finished', 'error'], failed: true }).map(j => j.id);
    expect(ids.sort()).toEqual(['a', 'c']);
    expect(store.view({ states: ['finished', 'error'] }).length).toBe(3);
  });
});

describe('the notifications setting', () => {
  it('reads all, failures and none, and the booleans of earlier versions', () => {
    expect(notifyWhen('failures')).toBe('failures');
    expect(notifyWhen('none')).toBe('none');
    expect(notifyWhen('all')).toBe('all');
    expect(notifyWhen(true)).toBe('all');
    expect(notifyWhen(false)).toBe('none');
    expect(notifyWhen(undefined)).toBe('all');
  });
});

describe('deleted jobs', () => {
  it('leave the store and its counts', () => {
    const store = new JobStore();
    store.upsert([job({ id: 'x', state: 'finished' }), job({ id: 'y', state: 'finished' })]);
    const seen: string[][] = [];
    store.changed.connect((_, c) => seen.push(c.changed));
    store.remove(['x', 'nope']);
    expect(store.has('x')).toBe(false);
    expect(store.counts().finished).toBe(1);
    expect(seen).toEqual([['x']]);
  });
});

describe('a finish by a signal', () => {
  it('is a failure, as the server says', () => {
    expect(isFailed(job({ state: 'finished', exit_code: null, signal: 9 }))).toBe(true);
  });
});
