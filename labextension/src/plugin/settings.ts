/** The user settings of the plugin (Settings → Sky Port), live: changes apply without a reload. */
import { ISettingRegistry } from '@jupyterlab/settingregistry';

import { TimeFormat } from '../format';
import { GroupBy } from '../store';
import { COLUMNS, ColumnId } from '../tablemodel';
import { NotifyWhen } from './notifications';

export interface ISwmSettings {
  defaultSite: string;
  notifications: NotifyWhen;
  groupBy: GroupBy;
  timeFormat: TimeFormat;
  /** The jobs table's columns, in order. */
  tableColumns: ColumnId[];
}

/** The notifications setting; `true`/`false` of earlier versions read as `all`/`none`. */
export function notifyWhen(value: unknown): NotifyWhen {
  if (value === false) {
    return 'none';
  }
  return value === 'failures' || value === 'none' ? value : 'all';
}

/** The settings until (or unless) the registry answers: the schema's defaults. */
export function defaultSettings(): ISwmSettings {
  return {
    defaultSite: '',
    notifications: 'all',
    groupBy: 'none',
    timeFormat: 'local',
    tableColumns: COLUMNS.map(c => c.id)
  };
}

/**
 * Load the settings of `pluginId` into `settings` and keep them current; `applied` runs after
 * each load or change. A registry that cannot load them leaves the defaults (and says so).
 */
export function followSettings(
  registry: ISettingRegistry,
  pluginId: string,
  settings: ISwmSettings,
  applied: (settings: ISwmSettings) => void
): void {
  registry
    .load(pluginId)
    .then(s => {
      const apply = (): void => {
        settings.defaultSite = (s.get('defaultSite').composite as string) ?? '';
        settings.notifications = notifyWhen(s.get('notifications').composite);
        settings.groupBy = ((s.get('groupBy').composite as string) ?? 'none') as GroupBy;
        const format = s.get('timeFormat').composite;
        settings.timeFormat = format === 'iso' || format === 'relative' ? format : 'local';
        const columns = s.get('tableColumns').composite;
        settings.tableColumns = Array.isArray(columns)
          ? COLUMNS.map(c => c.id).filter(id => columns.includes(id))
          : COLUMNS.map(c => c.id);
        applied(settings);
      };
      apply();
      s.changed.connect(apply);
    })
    .catch(err => console.warn('swm-jupyter: cannot load settings', err));
}
