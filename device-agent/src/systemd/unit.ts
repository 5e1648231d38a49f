import { type AgentUnitOptions, renderAgentUnit } from '@pifleet/protocol';

/** The agent's systemd unit; the text lives in `@pifleet/protocol` so provisioning bundles carry the same one. */
export type UnitOptions = AgentUnitOptions;
export const renderUnit = renderAgentUnit;
