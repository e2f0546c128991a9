/** Stop the hub of the hub UI tests (its log stays in test-results/hub.log). */
import { hubUi } from './hub-setup';

export default async function globalTeardown(): Promise<void> {
  hubUi('stop');
}
