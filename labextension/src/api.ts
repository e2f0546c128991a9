/**
 * The REST client of `/swm/api/v1/`. It is transport-agnostic: the plugin gives it a request
 * function built on `ServerConnection.makeRequest` (token, XSRF, base URL), tests give it a fake.
 * Every failure is an `SwmApiError` carrying the server's own `message` and field errors.
 */
import type {
  IActionResult,
  IDryRun,
  IJob,
  IJobFile,
  IJobList,
  IJobSpec,
  IJobSummary,
  ISite,
  ISiteList,
  JobAction
} from './types';

/** Sends `init` to `path` (relative to `/swm/api/v1/`) and resolves with the raw response. */
export type RequestFn = (path: string, init: RequestInit) => Promise<Response>;

export const API_PREFIX = 'swm/api/v1/';

export interface IFieldError {
  field: string;
  message: string;
}

/** An error answered by the server (status > 0) or a failed connection (status 0). */
export class SwmApiError extends Error {
  readonly status: number;
  readonly errors: IFieldError[];

  constructor(message: string, status: number, errors: IFieldError[] = []) {
    super(message);
    this.name = 'SwmApiError';
    this.status = status;
    this.errors = errors;
  }

  /** The message and every field error, one per line, as shown to the user. */
  describe(): string {
    const lines = [this.message];
    for (const e of this.errors) {
      lines.push(e.field ? `${e.field}: ${e.message}` : e.message);
    }
    return lines.join('\n');
  }

  /** Build the error of a non-2xx response from its body (JSON `{message, errors}` or text). */
  static async fromResponse(response: Response): Promise<SwmApiError> {
    let text = '';
    try {
      text = await response.text();
    } catch {
      text = '';
    }
    let message = '';
    let errors: IFieldError[] = [];
    try {
      const body = JSON.parse(text) as unknown;
      if (body && typeof body === 'object') {
        const obj = body as Record<string, unknown>;
        if (typeof obj.message === 'string') {
          message = obj.message;
        } else if (typeof obj.reason === 'string') {
          message = obj.reason;
        }
        if (Array.isArray(obj.errors)) {
          errors = obj.errors
            .filter(e => e && typeof e === 'object')
            .map(e => {
              const r = e as Record<string, unknown>;
              return {
                field: typeof r.field === 'string' ? r.field : '',
                message: typeof r.message === 'string' ? r.message : String(r.message ?? '')
              };
            });
        }
      }
    } catch {
      // Not JSON: a proxy page or plain text. Use its text if it is short and readable.
      const plain = text
        .replace(/<[^>]*>/g, ' ')
        .replace(/\s+/g, ' ')
        .trim();
      if (plain && plain.length <= 300) {
        message = plain;
      }
    }
    if (!message) {
      message = `The server answered ${response.status} ${response.statusText}`.trim();
    }
    return new SwmApiError(message, response.status, errors);
  }
}

export interface IJobQuery {
  state?: string[];
  site?: string;
  name?: string;
  since?: number | string;
  array_parent?: string;
  owner?: string;
  /** Leave array tasks out (an array shows as its parent). */
  top_level?: boolean;
  sort?: string;
  limit?: number;
  offset?: number;
  cursor?: string;
}

export interface ILogChunk {
  data: string;
  /** Byte offset after these bytes (`X-Log-Offset`). */
  offset: number;
  /** The job's state when the chunk was read (`X-Job-State`), if sent. */
  state: string | null;
}

function query(params: Record<string, unknown>): string {
  const parts: string[] = [];
  for (const [key, value] of Object.entries(params)) {
    if (value === undefined || value === null || value === '') {
      continue;
    }
    const values = Array.isArray(value) ? value : [value];
    for (const v of values) {
      parts.push(`${encodeURIComponent(key)}=${encodeURIComponent(String(v))}`);
    }
  }
  return parts.length ? `?${parts.join('&')}` : '';
}

const enc = encodeURIComponent;

export class SwmApi {
  constructor(private readonly _request: RequestFn) {}

  private async _send(path: string, init: RequestInit = {}): Promise<Response> {
    let response: Response;
    try {
      response = await this._request(path, init);
    } catch (err) {
      const reason = err instanceof Error ? err.message : String(err);
      throw new SwmApiError(`Cannot reach the Jupyter server: ${reason}`, 0);
    }
    if (!response.ok) {
      throw await SwmApiError.fromResponse(response);
    }
    return response;
  }

  private async _json<T>(path: string, init: RequestInit = {}): Promise<T> {
    const response = await this._send(path, init);
    const text = await response.text();
    try {
      return JSON.parse(text) as T;
    } catch {
      throw new SwmApiError(`The server sent an unreadable answer for ${path}`, response.status);
    }
  }

  private _post<T>(path: string, body: unknown): Promise<T> {
    return this._json<T>(path, {
      method: 'POST',
      body: JSON.stringify(body),
      headers: { 'Content-Type': 'application/json' }
    });
  }

  listJobs(q: IJobQuery = {}): Promise<IJobList> {
    return this._json<IJobList>(`jobs${query({ ...q })}`);
  }

  /**
   * Fetch every job page by page (cursor paging), calling `onPage` as each page arrives so the
   * first rows render before the last page is in.
   */
  async listAllJobs(
    onPage: (page: IJobList) => void,
    q: IJobQuery = {},
    isCancelled: () => boolean = () => false
  ): Promise<number> {
    let cursor: string | undefined;
    let count = 0;
    let offset = 0;
    const limit = q.limit ?? 1000;
    for (;;) {
      const page = await this.listJobs({
        ...q,
        limit,
        ...(cursor ? { cursor } : { offset })
      });
      if (isCancelled()) {
        return count;
      }
      onPage(page);
      count += page.jobs.length;
      offset += page.jobs.length;
      if (page.next_cursor) {
        cursor = page.next_cursor;
      } else if (page.jobs.length < limit || count >= page.total) {
        return count;
      } else {
        cursor = undefined;
      }
    }
  }

  getJob(id: string): Promise<IJob> {
    return this._json<IJob>(`jobs/${enc(id)}`);
  }

  submit(spec: IJobSpec): Promise<IJob> {
    return this._post<IJob>('jobs', spec);
  }

  dryRun(spec: IJobSpec): Promise<IDryRun> {
    return this._post<IDryRun>('jobs?dry_run=1', spec);
  }

  /** Delete a final job's record and folder (`DELETE /jobs/{id}?purge=1`). */
  async purge(id: string): Promise<void> {
    await this._send(`jobs/${enc(id)}?purge=1`, { method: 'DELETE' });
  }

  action(id: string, action: JobAction): Promise<IJob> {
    return this._json<IJob>(`jobs/${enc(id)}/${action}`, { method: 'POST' });
  }

  bulkAction(action: JobAction, ids: string[]): Promise<IActionResult> {
    return this._post<IActionResult>(`jobs/actions/${action}`, { ids });
  }

  async readLog(
    id: string,
    stream: 'stdout' | 'stderr',
    offset: number,
    limit?: number
  ): Promise<ILogChunk> {
    const response = await this._send(`jobs/${enc(id)}/log${query({ stream, offset, limit })}`);
    const data = await response.text();
    const header = response.headers.get('X-Log-Offset');
    const parsed = header === null ? NaN : Number(header);
    return {
      data,
      offset: Number.isFinite(parsed) ? parsed : offset + utf8Length(data),
      state: response.headers.get('X-Job-State')
    };
  }

  listFiles(id: string): Promise<{ files: IJobFile[] }> {
    return this._json<{ files: IJobFile[] }>(`jobs/${enc(id)}/files`);
  }

  /** Path (relative to the API prefix) of a job file, for download links. */
  filePath(id: string, path: string): string {
    return `jobs/${enc(id)}/files/${path.split('/').map(enc).join('/')}`;
  }

  sites(): Promise<ISiteList> {
    return this._json<ISiteList>('sites');
  }

  site(name: string): Promise<ISite> {
    return this._json<ISite>(`sites/${enc(name)}`);
  }
}

/** Byte length of `text` encoded as UTF-8. */
export function utf8Length(text: string): number {
  let n = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c < 0x80) {
      n += 1;
    } else if (c < 0x800) {
      n += 2;
    } else if (c >= 0xd800 && c <= 0xdbff && i + 1 < text.length) {
      n += 4;
      i++;
    } else {
      n += 3;
    }
  }
  return n;
}

export type { IJobSummary };
