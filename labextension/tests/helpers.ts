import type { IJobDeletedEvent, IJobEvent, IJobSummary, JobStateName } from '../src/types';
import { STATE_CODES } from '../src/types';

let counter = 0;

export function job(overrides: Partial<IJobSummary> = {}): IJobSummary {
  counter++;
  const state: JobStateName = overrides.state ?? 'queued';
  return {
    id: `job-${String(counter).padStart(5, '0')}`,
    name: `job ${counter}`,
    site: 'local',
    state,
    state_code: STATE_CODES[state],
    state_details: '',
    exit_code: null,
    native_id: null,
    priority: 0,
    owner: '',
    submit_time: 1764070000 + counter,
    start_time: null,
    end_time: null,
    ...overrides
  };
}

export function event(id: number, j: IJobSummary, state?: JobStateName): IJobEvent {
  const s = state ?? j.state;
  return {
    id,
    type: 'job',
    time: 1764070000 + id,
    job: { ...j, state: s, state_code: STATE_CODES[s] }
  };
}

/** The `job_deleted` event of `j` (its record was deleted on the server). */
export function deletion(id: number, j: IJobSummary): IJobDeletedEvent {
  return {
    id,
    type: 'job_deleted',
    time: 1764070000 + id,
    job: { id: j.id, name: j.name, owner: j.owner, array_parent: j.array_parent ?? null }
  };
}

/** A Response as fetch would give it. */
export function reply(
  status: number,
  body: unknown,
  headers: Record<string, string> = {}
): Response {
  const text = typeof body === 'string' ? body : JSON.stringify(body);
  return new Response(status === 204 ? null : text, {
    status,
    statusText:
      {
        200: 'OK',
        201: 'Created',
        400: 'Bad Request',
        404: 'Not Found',
        409: 'Conflict',
        500: 'Internal Server Error',
        503: 'Service Unavailable'
      }[status] ?? '',
    headers
  });
}
