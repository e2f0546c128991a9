import { endedNotice, formatTime } from '../src/format';
import { job } from './helpers';

describe('endedNotice', () => {
  it('calls a clean finish a success', () => {
    const n = endedNotice(job({ name: 'fit', state: 'finished', exit_code: 0 }));
    expect(n.type).toBe('success');
    expect(n.message).toMatch(/^Job .*fit.* finished$/);
  });

  it('calls a non-zero exit a failure and says the code', () => {
    const n = endedNotice(job({ name: 'fit', state: 'finished', exit_code: 3 }));
    expect(n.type).toBe('error');
    expect(n.message).toContain('failed with exit code 3');
  });

  it('says why a job failed, and warns of a canceled one', () => {
    const failed = endedNotice(job({ state: 'error', state_details: 'node lost' }));
    expect(failed.type).toBe('error');
    expect(failed.message).toContain('failed: node lost');
    const canceled = endedNotice(job({ state: 'canceled' }));
    expect(canceled.type).toBe('warning');
    expect(canceled.message).toContain('was canceled');
  });
});

describe('formatTime', () => {
  const t = new Date(2026, 0, 2, 3, 4, 5).getTime() / 1000;
  it('writes ISO times, relative times, and local times with the date before today', () => {
    expect(formatTime(t, 'iso')).toBe('2026-01-02 03:04:05');
    expect(formatTime(t, 'relative', t + 30)).toBe('just now');
    expect(formatTime(t, 'relative', t + 5400)).toBe('1h ago');
    expect(formatTime(t, 'local', t + 86400 * 3)).toMatch(/^2026-01-02 /);
    expect(formatTime(null)).toBe('');
  });
});
