export * from './schema';
export { ConfigError, type ConfigIssue } from './errors';
export {
  loadConfig,
  defaultConfig,
  parseFlags,
  redactConfig,
  CONFIG_FILE_ENV,
  CONFIG_FILE_FLAG,
  type LoadConfigOptions,
  type DeepPartial,
} from './load';
export { describeConfig, describeConfigMarkdown, type ConfigRow } from './describe';
export { CONFIG_FIELDS, type ConfigField } from './fields';
export { envNameOf, flagNameOf, ENV_PREFIX } from './spec';
