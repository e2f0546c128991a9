import { COLUMNS, MIN_WIDTH, TableModel, cellText } from '../src/tablemodel';
import { job } from './helpers';

describe('TableModel', () => {
  it('asks the server for the newest top-level jobs first, 50 at a time', () => {
    const m = new TableModel();
    expect(m.query()).toEqual({
      state: undefined,
      name: undefined,
      site: undefined,
      owner: undefined,
      top_level: true,
      sort: '-submit_time',
      limit: 50,
      offset: 0
    });
  });

  it('sorts a new column ascending, flips it on a second click, and goes back to page 1', () => {
    const m = new TableModel();
    m.offset = 100;
    m.sortBy('name');
    expect(m.sortKey()).toBe('name');
    expect(m.offset).toBe(0);
    m.sortBy('name');
    expect(m.sortKey()).toBe('-name');
    m.sortBy('exit');
    expect(m.sortKey()).toBe('exit_code');
    m.sortBy('elapsed');
    expect(m.sortKey()).toBe('exit_code');
  });

  it('turns pages within the total and says the range', () => {
    const m = new TableModel(50);
    m.turn(1, 120);
    expect(m.offset).toBe(50);
    m.turn(5, 120);
    expect(m.offset).toBe(100);
    expect(m.rangeText(20, 120)).toBe('101–120 of 120');
    m.turn(-9, 120);
    expect(m.offset).toBe(0);
    expect(m.rangeText(0, 0)).toBe('0 jobs');
    expect(new TableModel(50).rangeText(50, 100000)).toBe('1–50 of 100,000');
  });

  it('filters by state (active, failed), name, site and owner, from page 1', () => {
    const m = new TableModel();
    m.offset = 50;
    m.setFilter({ state: 'active', name: ' fit ', owner: 'alice' });
    const q = m.query();
    expect(q.state).toEqual(['queued', 'held', 'waiting', 'transferring', 'running']);
    expect(q.name).toBe('fit');
    expect(q.owner).toBe('alice');
    expect(q.offset).toBe(0);
    m.setFilter({ state: 'failed' });
    expect(m.query().state).toEqual(['failed']);
  });

  it('keeps column widths above a minimum and shows the owner only on a hub', () => {
    const m = new TableModel();
    m.resize('name', 5);
    expect(m.widths.name).toBe(MIN_WIDTH);
    expect(m.columns(false).map(c => c.id)).not.toContain('owner');
    expect(m.columns(true).length).toBe(COLUMNS.length);
  });

  it('writes cells: elapsed of a running job, duration of an ended one, exit code', () => {
    const running = job({ state: 'running', start_time: 1000, end_time: null });
    expect(cellText(running, 'elapsed', 1065)).toBe('1m 5s');
    const ended = job({ state: 'finished', start_time: 1000, end_time: 1010, exit_code: 3 });
    expect(cellText(ended, 'elapsed', 5000)).toBe('10s');
    expect(cellText(ended, 'exit')).toBe('3');
    expect(cellText(job({ exit_code: null }), 'exit')).toBe('');
  });
});
