/**
 * The connection of the front end to this Jupyter server's swm-jupyter extension: the REST
 * client, the job store and the sync that fills it (one REST load, then the events websocket).
 */
import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';

import { API_PREFIX, SwmApi } from '../api';
import type { IWebSocketLike } from '../events';
import { JobStore } from '../store';
import { JobSync } from '../sync';

export interface ISwmConnection {
  serverSettings: ServerConnection.ISettings;
  api: SwmApi;
  store: JobStore;
  sync: JobSync;
}

/** Connect to the server of `serverSettings` (not started: call `sync.start()`). */
export function connect(
  serverSettings: ServerConnection.ISettings = ServerConnection.makeSettings()
): ISwmConnection {
  const api = new SwmApi((path, init) =>
    ServerConnection.makeRequest(
      URLExt.join(serverSettings.baseUrl, API_PREFIX, path),
      init,
      serverSettings
    )
  );
  const store = new JobStore();
  const sync = new JobSync({
    api,
    store,
    wsUrl: URLExt.join(serverSettings.wsUrl, API_PREFIX, 'events'),
    token: serverSettings.token || undefined,
    socketFactory: url => new WebSocket(url) as unknown as IWebSocketLike
  });
  return { serverSettings, api, store, sync };
}
