import { SwmApi, SwmApiError, utf8Length } from '../src/api';
import { job, reply } from './helpers';

type Call = { path: string; init: RequestInit };

function fake(responses: Array<Response | Error>): { api: SwmApi; calls: Call[] } {
  const calls: Call[] = [];
  const api = new SwmApi(async (path, init) => {
    calls.push({ path, init });
    const next = responses.shift();
    if (!next) {
      throw new Error('no more responses');
    }
    if (next instanceof Error) {
      throw next;
    }
    return next;
  });
  return { api, calls };
}

describe('SwmApi errors', () => {
  it("surfaces the server's message and field errors", async () => {
    const { api } = fake([
      reply(400, {
        message: 'the job spec is invalid',
        errors: [{ field: 'resources.cpus', message: 'must be at most 64' }]
      })
    ]);
    const err = await api.submit({ script: 'x' }).catch(e => e);
    expect(err).toBeInstanceOf(SwmApiError);
    expect(err.status).toBe(400);
    expect(err.message).toBe('the job spec is invalid');
    expect(err.errors).toEqual([{ field: 'resources.cpus', message: 'must be at most 64' }]);
    expect(err.describe()).toBe('the job spec is invalid\nresources.cpus: must be at most 64');
  });

  it('uses a 409 message as is, not the status', async () => {
    const { api } = fake([reply(409, { message: 'job abc is finished: it cannot be canceled' })]);
    const err = (await api.action('abc', 'cancel').catch(e => e)) as SwmApiError;
    expect(err.describe()).toBe('job abc is finished: it cannot be canceled');
    expect(err.describe()).not.toMatch(/409/);
  });

  it('falls back to the text of a non-JSON answer, then to the status', async () => {
    const { api } = fake([
      reply(503, '<html><body>Site cluster is down</body></html>'),
      reply(500, '')
    ]);
    const a = (await api.sites().catch(e => e)) as SwmApiError;
    expect(a.message).toBe('Site cluster is down');
    const b = (await api.sites().catch(e => e)) as SwmApiError;
    expect(b.message).toBe('The server answered 500 Internal Server Error');
  });

  it('turns a failed connection into status 0', async () => {
    const { api } = fake([new TypeError('Failed to fetch')]);
    const err = (await api.getJob('x').catch(e => e)) as SwmApiError;
    expect(err.status).toBe(0);
    expect(err.message).toMatch(/Cannot reach the Jupyter server: Failed to fetch/);
  });
});

describe('SwmApi requests', () => {
  it('builds list queries with repeated states and encodes ids', async () => {
    const { api, calls } = fake([
      reply(200, { jobs: [], total: 0, counts: {}, next_cursor: null }),
      reply(200, job({ id: 'a/b' }))
    ]);
    await api.listJobs({ state: ['running', 'queued'], site: 'my site', limit: 5 });
    expect(calls[0].path).toBe('jobs?state=running&state=queued&site=my%20site&limit=5');
    await api.getJob('a/b');
    expect(calls[1].path).toBe('jobs/a%2Fb');
  });

  it('follows cursors until the last page', async () => {
    const p1 = [job(), job()];
    const p2 = [job()];
    const { api, calls } = fake([
      reply(200, { jobs: p1, total: 3, counts: {}, next_cursor: 'c1' }),
      reply(200, { jobs: p2, total: 3, counts: {}, next_cursor: null })
    ]);
    const seen: string[] = [];
    const n = await api.listAllJobs(page => seen.push(...page.jobs.map(j => j.id)), { limit: 2 });
    expect(n).toBe(3);
    expect(seen).toEqual([...p1, ...p2].map(j => j.id));
    expect(calls[0].path).toBe('jobs?limit=2&offset=0');
    expect(calls[1].path).toBe('jobs?limit=2&cursor=c1');
  });

  it('posts JSON for submits, dry runs and bulk actions', async () => {
    const { api, calls } = fake([
      reply(201, job()),
      reply(200, { job: job(), cost_estimate: 1.5 }),
      reply(200, { done: ['a'], failed: [{ id: 'b', message: 'finished' }] })
    ]);
    await api.submit({ script: 'echo hi', site: 'local' });
    expect(calls[0].path).toBe('jobs');
    expect(calls[0].init.method).toBe('POST');
    expect(JSON.parse(String(calls[0].init.body))).toEqual({ script: 'echo hi', site: 'local' });
    const dry = await api.dryRun({ script: 'x' });
    expect(calls[1].path).toBe('jobs?dry_run=1');
    expect(dry.cost_estimate).toBe(1.5);
    const r = await api.bulkAction('hold', ['a', 'b']);
    expect(calls[2].path).toBe('jobs/actions/hold');
    expect(JSON.parse(String(calls[2].init.body))).toEqual({ ids: ['a', 'b'] });
    expect(r.failed[0].message).toBe('finished');
  });

  it('reads logs from an offset and returns the next offset', async () => {
    const { api, calls } = fake([
      reply(200, 'line 3\n', { 'X-Log-Offset': '21', 'X-Job-State': 'running' }),
      reply(200, 'é\n')
    ]);
    const chunk = await api.readLog('j1', 'stderr', 14);
    expect(calls[0].path).toBe('jobs/j1/log?stream=stderr&offset=14');
    expect(chunk).toEqual({ data: 'line 3\n', offset: 21, state: 'running' });
    const noHeader = await api.readLog('j1', 'stdout', 10);
    expect(noHeader.offset).toBe(13);
  });

  it('counts UTF-8 bytes', () => {
    expect(utf8Length('abc')).toBe(3);
    expect(utf8Length('é')).toBe(2);
    expect(utf8Length('€')).toBe(3);
    expect(utf8Length('😀')).toBe(4);
  });
});
