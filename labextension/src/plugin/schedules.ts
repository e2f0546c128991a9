/**
 * The "Schedules" tab: its REST client and model on this server's connection, the tab in the
 * sidebar, and browser notifications for the run events that ask for one (failures, or every end
 * when the schedule says so).
 */
import { Notification } from '@jupyterlab/apputils';
import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';
import { TabPanel } from '@lumino/widgets';

import { API_PREFIX } from '../api';
import { IScheduleRunEvent, ScheduleClient, ScheduleModel, runNotice } from '../schedules';
import { JobSync } from '../sync';
import { SchedulesPanel } from '../widgets/schedulespanel';

export interface ISchedulesTabOptions {
  sidebar: TabPanel;
  sync: JobSync;
  serverSettings: ServerConnection.ISettings;
  openJob: (id: string) => void;
  /** Whether notifications are on (the user setting). */
  notify: () => boolean;
}

/** Add the Schedules tab to the sidebar; returns its model. */
export function addSchedulesTab(opts: ISchedulesTabOptions): ScheduleModel {
  const { serverSettings } = opts;
  const client = new ScheduleClient((path, init) =>
    ServerConnection.makeRequest(
      URLExt.join(serverSettings.baseUrl, API_PREFIX, path),
      init,
      serverSettings
    )
  );
  const model = new ScheduleModel(client);
  const panel = new SchedulesPanel({ model, openJob: opts.openJob });
  panel.id = 'swm-schedules';
  panel.title.label = 'Schedules';
  opts.sidebar.addWidget(panel);
  opts.sync.otherEvent.connect((_, event) => {
    if (!model.applyEvent(event) || event.type !== 'schedule_run' || !opts.notify()) {
      return;
    }
    const runEvent = event as unknown as IScheduleRunEvent;
    const notice = runNotice(runEvent);
    if (notice) {
      const jobId = runEvent.run.job_id;
      Notification.emit(notice.message, notice.type, {
        autoClose: 8000,
        actions: jobId ? [{ label: 'Open', callback: () => opts.openJob(jobId) }] : []
      });
    }
  });
  void model.load();
  return model;
}
