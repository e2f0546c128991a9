/** The user settings of the plugin (Settings → Sky Port), live: changes apply without a reload. */
import { ISettingRegistry } from '@jupyterlab/settingregistry';

import { TimeFormat } from '../format';
import { GroupBy } from '../store';
import { COLUMNS, ColumnId, columnsOf } from '../tablemodel';
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

/** Store one user setting (e.g. `tableColumns` after a column was moved). */
export type SaveSetting = (key: keyof ISwmSettings, value: ReadonlyArray<string> | string) => void;

/**
 * Load the settings of `pluginId` into `settings` and keep them current; `applied` runs after
 * each load or change. A registry that cannot load them leaves the defaults (and says so).
 * Returns how to store a setting (it reaches `applied` through the registry's change signal).
 */
export function followSettings(
  registry: ISettingRegistry,
  pluginId: string,
  settings: ISwmSettings,
  applied: (settings: ISwmSettings) => void
): SaveSetting {
  const loaded = registry.load(pluginId);
  loaded
    .then(s => {
      const apply = (): void => {
        settings.defaultSite = (s.get('defaultSite').composite as string) ?? '';
        settings.notifications = notifyWhen(s.get('notifications').composite);
        settings.groupBy = ((s.get('groupBy').composite as string) ?? 'none') as GroupBy;
        const format = s.get('timeFormat').composite;
        settings.timeFormat = format === 'iso' || format === 'relative' ? format : 'local';
        settings.tableColumns = columnsOf(s.get('tableColumns').composite);
        applied(settings);
      };
      apply();
      s.changed.connect(apply);
    })
    .catch(err => console.warn('swm-jupyter: cannot load settings', err));
  return (key, value) => {
    loaded
      .then(s => s.set(key, value as string[]))
      .catch(err => console.warn(`swm-jupyter: cannot save the setting ${key}`, err));
  };
}
