/**
 * Start and stop a real `jupyter lab` for the UI tests and the benchmark: a free 127.0.0.1
 * port, a random token, a temporary root folder and swm data folder, its own runtime folder.
 */
import { ChildProcess, spawn } from 'child_process';
import * as crypto from 'crypto';
import * as fs from 'fs';
import * as net from 'net';
import * as os from 'os';
import * as path from 'path';

export interface ILabServer {
  url: string;
  token: string;
  root: string;
  dataDir: string;
  tmp: string;
  pid: number;
  logFile: string;
}

export const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync'
];

export const CHROMIUM = process.env.SWM_CHROMIUM ?? '/usr/bin/chromium';

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

/** The `jupyter` command: $SWM_JUPYTER, else the one next to $VIRTUAL_ENV/python, else PATH. */
function jupyterCommand(): string {
  if (process.env.SWM_JUPYTER) {
    return process.env.SWM_JUPYTER;
  }
  if (process.env.VIRTUAL_ENV) {
    const candidate = path.join(process.env.VIRTUAL_ENV, 'bin', 'jupyter');
    if (fs.existsSync(candidate)) {
      return candidate;
    }
  }
  return 'jupyter';
}

export async function startLab(files: Record<string, string> = {}): Promise<ILabServer> {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'swm-ui-'));
  const root = path.join(tmp, 'root');
  const dataDir = path.join(tmp, 'swm-data');
  fs.mkdirSync(root);
  fs.mkdirSync(dataDir);
  for (const [name, content] of Object.entries(files)) {
    const p = path.join(root, name);
    fs.mkdirSync(path.dirname(p), { recursive: true });
    fs.writeFileSync(p, content, { mode: name.endsWith('.sh') ? 0o755 : 0o644 });
  }
  // No news prompt over the UI in screenshots.
  const notif = path.join(tmp, 'settings', '@jupyterlab', 'apputils-extension');
  fs.mkdirSync(notif, { recursive: true });
  fs.writeFileSync(
    path.join(notif, 'notification.jupyterlab-settings'),
    JSON.stringify({ fetchNews: 'false', checkForUpdates: false })
  );
  const port = await freePort();
  const token = crypto.randomBytes(16).toString('hex');
  const logFile = path.join(tmp, 'jupyter.log');
  const out = fs.openSync(logFile, 'a');
  const args = [
    'lab',
    '--no-browser',
    '--allow-root',
    '--ServerApp.ip=127.0.0.1',
    `--ServerApp.port=${port}`,
    '--ServerApp.port_retries=0',
    `--IdentityProvider.token=${token}`,
    `--ServerApp.root_dir=${root}`,
    `--SwmApp.data_dir=${dataDir}`,
    '--LabApp.expose_app_in_browser=True',
    '--LabServerApp.workspaces_dir=' + path.join(tmp, 'workspaces'),
    '--LabApp.news_url=',
    '--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate'
  ];
  const child: ChildProcess = spawn(jupyterCommand(), args, {
    cwd: tmp,
    detached: true,
    stdio: ['ignore', out, out],
    env: {
      ...process.env,
      JUPYTER_RUNTIME_DIR: path.join(tmp, 'runtime'),
      JUPYTER_CONFIG_DIR: path.join(tmp, 'config'),
      JUPYTERLAB_SETTINGS_DIR: path.join(tmp, 'settings'),
      JUPYTERLAB_WORKSPACES_DIR: path.join(tmp, 'workspaces')
    }
  });
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 60000;
  let exited: number | null = null;
  child.on('exit', code => (exited = code ?? -1));
  for (;;) {
    if (exited !== null) {
      throw new Error(`jupyter lab exited (${exited}):\n${fs.readFileSync(logFile, 'utf8')}`);
    }
    try {
      const r = await fetch(`${url}/swm/api/v1/sites`, {
        headers: { Authorization: `token ${token}` }
      });
      if (r.ok) {
        break;
      }
    } catch {
      // not up yet
    }
    if (Date.now() > deadline) {
      stopPid(child.pid ?? 0);
      throw new Error(`jupyter lab did not answer in 60 s:\n${fs.readFileSync(logFile, 'utf8')}`);
    }
    await new Promise(r => setTimeout(r, 300));
  }
  return { url, token, root, dataDir, tmp, pid: child.pid ?? 0, logFile };
}

function stopPid(pid: number): void {
  if (!pid) {
    return;
  }
  try {
    process.kill(-pid, 'SIGTERM');
  } catch {
    // already gone
  }
}

export async function stopLab(server: ILabServer, keep = false): Promise<void> {
  stopPid(server.pid);
  const deadline = Date.now() + 10000;
  while (Date.now() < deadline) {
    try {
      process.kill(server.pid, 0);
    } catch {
      break;
    }
    await new Promise(r => setTimeout(r, 200));
  }
  try {
    process.kill(-server.pid, 'SIGKILL');
  } catch {
    // gone
  }
  if (!keep) {
    fs.rmSync(server.tmp, { recursive: true, force: true });
  }
}

/** Call the swm API of `server` from Node (for setup and checks, never for the UI under test). */
export async function api<T>(
  server: ILabServer,
  route: string,
  init: { method?: string; body?: unknown } = {}
): Promise<T> {
  const r = await fetch(`${server.url}/swm/api/v1/${route}`, {
    method: init.method ?? 'GET',
    headers: { Authorization: `token ${server.token}`, 'Content-Type': 'application/json' },
    body: init.body === undefined ? undefined : JSON.stringify(init.body)
  });
  const text = await r.text();
  if (!r.ok) {
    throw new Error(`${route}: ${r.status} ${text}`);
  }
  return JSON.parse(text) as T;
}
