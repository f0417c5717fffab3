// Preloaded into the Azurite child (testkit/azurite.ts): defers Azurite's `require("applicationinsights")` until
// first use. Telemetry is off (--disableTelemetry), so it is never used, and loading it (OpenTelemetry SDK,
// exporters) was about two thirds of Azurite's start-up CPU time — paid once per test suite. Plain JS: the child
// runs without ts-node.
'use strict';
const Module = require('module');

const load = Module._load;
Module._load = function lazyTelemetry(request, parent, isMain) {
  if (request !== 'applicationinsights' || !parent || !/[\\/]azurite[\\/]/.test(parent.filename)) {
    return load.apply(this, arguments);
  }
  let real;
  const target = () => (real ??= load.call(Module, request, parent, isMain));
  return new Proxy(
    {},
    {
      get: (_, key) => Reflect.get(target(), key),
      has: (_, key) => Reflect.has(target(), key),
      set: (_, key, value) => Reflect.set(target(), key, value),
      ownKeys: () => Reflect.ownKeys(target()),
      getOwnPropertyDescriptor: (_, key) => {
        const d = Reflect.getOwnPropertyDescriptor(target(), key);
        return d && { ...d, configurable: true };
      },
    },
  );
};
