/**
 * Makes `require('@azure/functions-core')` resolve to Pagewise's stand-in when running outside the
 * Functions worker (CLI, `pagewise serve`, demo). Must run before `@azure/functions` is first loaded:
 * that package looks the module up once and caches the answer.
 */
import Module = require('node:module');

const CORE_MODULE = '@azure/functions-core';
let installed = false;

export function installFunctionsCore(): void {
  if (installed) return;
  const shimPath = require.resolve('./functionsCore');
  const loader = Module as unknown as {
    _resolveFilename: (request: string, ...rest: unknown[]) => string;
  };
  const original = loader._resolveFilename;
  loader._resolveFilename = function resolveFunctionsCore(request: string, ...rest: unknown[]): string {
    if (request === CORE_MODULE) return shimPath;
    return original.call(this, request, ...rest);
  };
  installed = true;
}
