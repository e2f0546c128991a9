/**
 * Wire types of the swm-jupyter REST and websocket API (docs/api.md).
 * Nothing here imports JupyterLab, so the models are testable in plain Node.
 */

/** Readable state names, in the order the sidebar groups them. */
export const STATES = [
  'running',
  'transferring',
  'waiting',
  'queued',
  'held',
  'finished',
  'error',
  'canceled'
] as const;

export type JobStateName = (typeof STATES)[number];

/** Sky Port's one-letter code of each state. */
export const STATE_CODES: Record<JobStateName, string> = {
  queued: 'Q',
  held: 'H',
  waiting: 'W',
  transferring: 'T',
  running: 'R',
  finished: 'F',
  error: 'E',
  canceled: 'C'
};

/** States a job never leaves by itself. */
export const FINAL_STATES: ReadonlySet<JobStateName> = new Set(['finished', 'error', 'canceled']);

export function isFinal(state: JobStateName): boolean {
  return FINAL_STATES.has(state);
}

/**
 * A job that ended badly: finished with a non-zero exit code or by a signal, or in error (the
 * server's `state=failed` filter means the same).
 */
export function isFailed(job: {
  state: JobStateName;
  exit_code?: number | null;
  signal?: number | null;
}): boolean {
  return (
    job.state === 'error' ||
    (job.state === 'finished' &&
      ((job.exit_code !== null && job.exit_code !== undefined && job.exit_code !== 0) ||
        (job.signal !== null && job.signal !== undefined)))
  );
}

/** What a job is shown as: its state, or `failed` for a finish with a non-zero exit code. */
export type ShownState = JobStateName | 'failed';

export function shownState(job: { state: JobStateName; exit_code?: number | null }): ShownState {
  return job.state === 'finished' && isFailed(job) ? 'failed' : job.state;
}

/** A state badge's classes and tooltip: failed jobs are red whatever their state letter. */
export function badgeOf(job: {
  state: JobStateName;
  exit_code?: number | null;
  state_details?: string;
}): { className: string; title: string } {
  const failed = isFailed(job);
  const why =
    job.exit_code !== null && job.exit_code !== undefined && job.exit_code !== 0
      ? ` (exit code ${job.exit_code})`
      : job.state_details
        ? ` (${job.state_details})`
        : '';
  return {
    className: `swm-StateBadge swm-state-${job.state}${failed ? ' swm-state-failed' : ''}`,
    title: failed ? `failed${job.state === 'error' ? ': error' : ''}${why}` : job.state
  };
}

/** Parse a state name or letter; undefined when unknown. */
export function parseState(text: string): JobStateName | undefined {
  const low = text.trim().toLowerCase();
  for (const s of STATES) {
    if (low === s || low === STATE_CODES[s].toLowerCase()) {
      return s;
    }
  }
  return undefined;
}

export interface IResources {
  nodes?: number | null;
  cpus?: number | null;
  memory?: number | string | null;
  gpus?: number | null;
  walltime?: number | string | null;
}

export interface IJobSpec {
  name?: string | null;
  site?: string | null;
  script?: string | null;
  command?: string[] | null;
  notebook?: string | null;
  parameters?: Record<string, unknown>;
  workdir?: string | null;
  env?: Record<string, string>;
  resources?: IResources;
  input_files?: string[];
  output_files?: string[];
  array?: string | null;
  priority?: number;
  hold?: boolean;
  flavor?: string | null;
  cloud_image?: string | null;
  container_image?: string | null;
  [extra: string]: unknown;
}

export interface IJobSummary {
  id: string;
  name: string;
  site: string;
  state: JobStateName;
  state_code: string;
  state_details: string;
  exit_code: number | null;
  signal?: number | null;
  native_id?: string | null;
  array_parent?: string | null;
  array_index?: number | null;
  priority: number;
  owner: string;
  /** How many state changes the job has had: only grows, so a smaller count is an older account. */
  changes?: number;
  submit_time: number;
  start_time: number | null;
  end_time: number | null;
  cost?: { estimate: number | null; actual: number | null };
}

export interface IHistoryEntry {
  time: number;
  state: JobStateName;
  code: string;
  details: string;
}

export interface IJob extends IJobSummary {
  spec: IJobSpec;
  history: IHistoryEntry[];
  folder: string;
}

export interface IJobList {
  jobs: IJobSummary[];
  total: number;
  counts: Partial<Record<JobStateName, number>>;
  next_cursor: string | null;
}

export interface IFlavor {
  id: string;
  name: string;
  cpus: number;
  gpus: number;
  mem: number;
  storage?: number;
  price: number;
}

export interface IImage {
  id: string;
  name: string;
  kind: string;
}

export interface ISiteLimits {
  cpus?: number | null;
  memory?: number | null;
  gpus?: number | null;
  nodes?: number | null;
  walltime?: number | null;
}

export interface ISite {
  name: string;
  kind: string;
  description: string;
  healthy: boolean;
  health_message: string;
  max_running: number | null;
  limits: ISiteLimits;
  flavors: IFlavor[];
  images: IImage[];
  counts: Partial<Record<JobStateName, number>>;
}

export interface ISiteList {
  sites: ISite[];
  default: string;
}

export interface IJobFile {
  path: string;
  size: number;
  mtime: number;
}

export interface IActionResult {
  done: string[];
  failed: { id: string; message: string }[];
}

export interface IDryRun {
  job: Omit<IJob, 'id'> & { id?: string | null };
  cost_estimate: number | null;
  /** `#SWM` lines the server would ignore, with why. */
  warnings?: string[];
}

export interface IJobEvent {
  id: number;
  type: 'job';
  time: number;
  job: IJobSummary;
}

/**
 * A job's record was deleted (purge, `swm rm`, retention): forget it, and an array's tasks with it.
 * Stored and numbered like job events, so a client that reconnects with `last_event_id` gets it.
 */
export interface IJobDeletedEvent {
  id: number;
  type: 'job_deleted';
  time: number;
  job: { id: string; name: string; owner: string; array_parent: string | null };
}

/** New output of a subscribed job; `offset` is the byte offset after `data` (as sent by the server). */
export interface ILogEvent {
  type: 'log';
  job_id: string;
  stream: 'stdout' | 'stderr';
  offset: number;
  data: string;
}

export interface IHelloEvent {
  type: 'hello';
  last_event_id: number;
  /** The name this connection's user owns jobs under (the `owner` of the jobs they submit). */
  owner?: string;
}

/** All output of a subscribed job that has ended was sent. */
export interface ILogEndEvent {
  type: 'log_end';
  job_id: string;
  offsets: { stdout: number; stderr: number };
}

/** A problem with a client message or a log subscription. */
export interface IErrorEvent {
  type: 'error';
  job_id?: string;
  message: string;
}

/**
 * The client fell too far behind: every event up to `last_event_id` was sent before this message;
 * the server closes the socket and the client reconnects with `last_event_id` (nothing is lost).
 */
export interface IResyncEvent {
  type: 'resync';
  last_event_id: number;
  message: string;
}

/**
 * Events the client asked to replay were deleted (event retention): it loads the job list again;
 * the events still kept follow.
 */
export interface IReloadEvent {
  type: 'reload';
  last_event_id: number;
  message: string;
}

/** What log subscribers receive. */
export type LogStreamEvent = ILogEvent | ILogEndEvent | IErrorEvent;

/** The events that change the job list (stored, numbered, replayed). */
export type JobListEvent = IJobEvent | IJobDeletedEvent;

export type ServerEvent =
  | IJobEvent
  | IJobDeletedEvent
  | ILogEvent
  | IHelloEvent
  | ILogEndEvent
  | IErrorEvent
  | IResyncEvent
  | IReloadEvent;

export type JobAction = 'cancel' | 'hold' | 'release' | 'requeue';
