/**
 * Provisioning templates of the local IoT Core: the template language (static check and
 * evaluation to a plan), the store, the control-plane service and routes. The device-side fleet
 * provisioning API (RegisterThing over MQTT) takes a template with
 * {@link ProvisioningTemplates.getTemplateForProvisioning} and evaluates it with
 * {@link evaluateCheckedTemplate}.
 */
export * from './control-plane-routes.js';
export * from './local.js';
export * from './store.js';
export * from './template-language.js';
export * from './templates.js';
