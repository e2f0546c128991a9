import { COLUMNS, MIN_WIDTH, TableModel, cellText, columnsOf } from '../src/tablemodel';
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

  it("shows the setting's columns in the setting's order", () => {
    const m = new TableModel();
    m.setOrder(['exit', 'name', 'owner', 'state']);
    expect(m.columns(false).map(c => c.id)).toEqual(['exit', 'name', 'state']);
    expect(m.columns(true).map(c => c.id)).toEqual(['exit', 'name', 'owner', 'state']);
    // Unknown names and repeats are dropped; anything but a list is every column, as by default.
    expect(columnsOf(['name', 'bogus', 'name', 'site'])).toEqual(['name', 'site']);
    expect(columnsOf(undefined)).toEqual(COLUMNS.map(c => c.id));
    expect(columnsOf('name')).toEqual(COLUMNS.map(c => c.id));
  });

  it('moves a dragged column before or after the header it is dropped on', () => {
    const m = new TableModel();
    m.setOrder(['state', 'name', 'site', 'submitted', 'exit']);
    expect(m.moveColumn('exit', 'name', 'before')).toBe(true);
    expect(m.order).toEqual(['state', 'exit', 'name', 'site', 'submitted']);
    expect(m.moveColumn('state', 'submitted', 'after')).toBe(true);
    expect(m.order).toEqual(['exit', 'name', 'site', 'submitted', 'state']);
    // Dropped where it already is, on itself, or a column not shown: nothing changes.
    expect(m.moveColumn('name', 'site', 'before')).toBe(false);
    expect(m.moveColumn('name', 'name', 'after')).toBe(false);
    expect(m.moveColumn('elapsed', 'name', 'before')).toBe(false);
    expect(m.moveColumn('name', 'elapsed', 'before')).toBe(false);
    expect(m.order).toEqual(['exit', 'name', 'site', 'submitted', 'state']);
  });

  it('moves a column one place left or right among those shown, keeping Owner in place', () => {
    const m = new TableModel();
    m.setOrder(['state', 'owner', 'name', 'site']);
    // Not on a hub Owner is not shown: Name's left neighbour is State.
    expect(m.shiftColumn('name', -1, false)).toBe(true);
    expect(m.order).toEqual(['name', 'state', 'owner', 'site']);
    expect(m.columns(false).map(c => c.id)).toEqual(['name', 'state', 'site']);
    expect(m.shiftColumn('name', -1, false)).toBe(false);
    expect(m.shiftColumn('site', 1, false)).toBe(false);
    expect(m.shiftColumn('state', 1, true)).toBe(true);
    expect(m.order).toEqual(['name', 'owner', 'state', 'site']);
  });
});
