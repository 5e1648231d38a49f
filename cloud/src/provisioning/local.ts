import { join } from 'node:path';
import type { RouteGroup } from '../http/server.js';
import { provisioningTemplateRoutes } from './control-plane-routes.js';
import { openSqliteProvisioningStore } from './store.js';
import { createProvisioningTemplates, type ProvisioningTemplates } from './templates.js';

/** The provisioning templates' file in the local core's data directory. */
export const PROVISIONING_TEMPLATES_FILE = 'provisioning-templates.sqlite';

export interface LocalProvisioningTemplates {
  readonly templates: ProvisioningTemplates;
  /** The control-plane route group (signing name `iot`). */
  readonly routes: RouteGroup;
  close(): void;
}

/**
 * The local core's provisioning templates: their store in the data directory, the service and its
 * control-plane routes, composed in one call so the core's wiring adds one line for them.
 */
export function openLocalProvisioningTemplates(deps: {
  readonly dataDir: string;
  readonly region: string;
  readonly accountId: string;
  /** Milliseconds since the epoch. */
  readonly now: () => number;
}): LocalProvisioningTemplates {
  const store = openSqliteProvisioningStore({ path: join(deps.dataDir, PROVISIONING_TEMPLATES_FILE) });
  const templates = createProvisioningTemplates({
    store,
    region: deps.region,
    accountId: deps.accountId,
    now: deps.now,
  });
  return { templates, routes: provisioningTemplateRoutes({ templates }), close: () => store.close() };
}
