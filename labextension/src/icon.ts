/** The Sky Port icon of the sidebar tab, job views, toolbar buttons and commands. */
import { LabIcon } from '@jupyterlab/ui-components';

import iconSvg from '../style/icon.svg';

export const swmIcon = new LabIcon({ name: 'swm-jupyter:skyport', svgstr: iconSvg });
