/**
 * Stand-in for `@azure/functions-core`, the module the Azure Functions Node worker injects at run time.
 * `@azure/functions` hands every `app.*` registration to `registerFunction` of this module; outside the
 * worker the module is missing and registrations are dropped ("test mode"). Pagewise maps the module
 * name here (jest `moduleNameMapper`, or `installFunctionsCore()` for plain Node) so the local durable
 * runtime can invoke exactly the handlers the real host would.
 */

/** The binding shape `@azure/functions` passes for each function (see toCoreFunctionMetadata). */
export interface CoreBinding {
  type: string;
  direction: 'in' | 'out';
  name?: string;
  [key: string]: unknown;
}

export interface CoreFunctionMetadata {
  name: string;
  bindings: Record<string, CoreBinding>;
  retryOptions?: unknown;
}

export type CoreHandler = (...args: unknown[]) => unknown;

export interface RegisteredFunction {
  metadata: CoreFunctionMetadata;
  handler: CoreHandler;
  /** The binding whose type ends in "Trigger". */
  trigger: CoreBinding & { name: string };
}

const functions = new Map<string, RegisteredFunction>();
let programmingModel: unknown;

export function registerFunction(metadata: CoreFunctionMetadata, handler: CoreHandler): { dispose(): void } {
  const entry = Object.entries(metadata.bindings).find(([, b]) => /trigger$/i.test(b.type));
  if (!entry) throw new Error(`function ${metadata.name} has no trigger binding`);
  if (functions.has(metadata.name)) throw new Error(`function ${metadata.name} is registered twice`);
  functions.set(metadata.name, { metadata, handler, trigger: { ...entry[1], name: entry[0] } });
  return { dispose: () => functions.delete(metadata.name) };
}

export function setProgrammingModel(model: unknown): void {
  programmingModel = model;
}

export function getProgrammingModel(): unknown {
  return programmingModel;
}

/** Every function registered so far, by name. */
export function registeredFunctions(): ReadonlyMap<string, RegisteredFunction> {
  return functions;
}

/** Marker so callers can check that this module (not the worker's) is the one in use. */
export const isPagewiseFunctionsCore = true;

/**
 * The worker's system log (present since Functions host 4.28). `@azure/functions` checks for it before
 * `app.setup({ enableHttpStream: true })` — without it setup refuses — and logs its own notices here.
 * Outside Azure only warnings and errors matter; the library's debug notices are dropped.
 */
export function log(level: string, _category: string, message: string): void {
  if (level === 'warning') console.warn(message);
  else if (level === 'error' || level === 'critical') console.error(message);
}
