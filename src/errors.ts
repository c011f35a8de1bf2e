/**
 * Typed errors: one class per STRAIT_ERR_* code, so callers branch on `code`, never on text.
 * Native code throws only at load/config time; the data path reports numeric status codes.
 */
export class StraitError extends Error {
  readonly code: string;
  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.name = new.target.name;
  }
}

/** One problem in a configuration, located by its field path (`static_resources.clusters[0].name`). */
export interface FieldError {
  readonly path: string;
  readonly message: string;
}

/** A configuration was rejected; `errors` lists every problem found, not just the first. */
export class ConfigError extends StraitError {
  readonly errors: readonly FieldError[];
  constructor(errors: readonly FieldError[], source?: string) {
    const where = source ? `${source}: ` : '';
    const lines = errors.map((e) => `  ${e.path || '(root)'}: ${e.message}`);
    super('STRAIT_ERR_CONFIG', `${where}invalid configuration (${errors.length} problem${errors.length === 1 ? '' : 's'}):\n${lines.join('\n')}`);
    this.errors = errors;
  }
}

/** The native addon is missing, failed to build, or does not match this platform. */
export class NativeLoadError extends StraitError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('STRAIT_ERR_NATIVE_LOAD', message, options);
  }
}

/** A socket operation failed at start-up (bind, listen): the process must not come up half-configured. */
export class BindError extends StraitError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('STRAIT_ERR_BIND', message, options);
  }
}

/** `strait intercept` could not install, inspect or remove traffic interception. */
export class InterceptError extends StraitError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('STRAIT_ERR_INTERCEPT', message, options);
  }
}
