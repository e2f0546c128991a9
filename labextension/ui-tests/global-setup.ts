import * as fs from 'fs';
import * as path from 'path';

import { FILES } from './fixtures';
import { startLab } from './server';

export const STATE_FILE = path.join(__dirname, 'test-results', 'server.json');

export default async function globalSetup(): Promise<void> {
  const server = await startLab(FILES);
  fs.mkdirSync(path.dirname(STATE_FILE), { recursive: true });
  fs.writeFileSync(STATE_FILE, JSON.stringify(server));
  process.env.SWM_LAB_URL = server.url;
  process.env.SWM_LAB_TOKEN = server.token;
  process.env.SWM_LAB_ROOT = server.root;
  console.log(`jupyter lab at ${server.url} (root ${server.root}, log ${server.logFile})`);
}
