import { endedNotice } from '../src/format';
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
