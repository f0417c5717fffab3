// Preloaded into processes the tests spawn from TypeScript sources (the `pagewise` CLI through bin/pagewise.js,
// ts-node children): keeps ts-node's transpiled output on disk, keyed by the source, its path, the compiler and
// tsconfig, so each spawn does not transpile the whole CLI again (seconds of CPU per spawn). The transpiler and what
// it emits are ts-node's own; a changed source is a new key. Plain JS: it runs before ts-node is registered.
'use strict';
const crypto = require('crypto');
const fs = require('fs');
const os = require('os');
const path = require('path');
const Module = require('module');

const dir = process.env.PAGEWISE_TEST_TS_CACHE || path.join(os.tmpdir(), `pagewise-ts-node-cache-${process.getuid ? process.getuid() : 'u'}`);
let salt;

function cached(compile, service) {
  return function cachedCompile(code, fileName, lineOffset = 0) {
    salt ??= [service.ts.version, JSON.stringify(service.options), JSON.stringify(service.config.options)].join('\0');
    const key = crypto.createHash('sha256').update(salt).update('\0').update(fileName).update('\0').update(String(lineOffset)).update('\0').update(code).digest('hex');
    const file = path.join(dir, key.slice(0, 2), `${key}.js`);
    try {
      return fs.readFileSync(file, 'utf8');
    } catch {
      // not cached yet
    }
    const output = compile.call(this, code, fileName, lineOffset);
    try {
      fs.mkdirSync(path.dirname(file), { recursive: true });
      const tmp = `${file}.${process.pid}.${crypto.randomBytes(4).toString('hex')}`;
      fs.writeFileSync(tmp, output);
      fs.renameSync(tmp, file); // atomic: a concurrent reader sees the whole output or none
    } catch {
      // a cache that cannot be written only costs time
    }
    return output;
  };
}

const load = Module._load;
let patched = false;
Module._load = function patchTsNode(request, parent) {
  const exports = load.apply(this, arguments);
  // ts-node's main module, as `require('ts-node')` (bin/pagewise.js) or ts-node/register/* (`require('../')`) load it
  const fromTsNode = request === 'ts-node' || (parent && /[\\/]ts-node[\\/]register[\\/]/.test(parent.filename));
  if (!patched && fromTsNode && exports && typeof exports.register === 'function' && typeof exports.create === 'function') {
    patched = true;
    const register = exports.register;
    exports.register = function registerCached(options) {
      const service = options && options[Object.getOwnPropertySymbols(options).find((s) => s.description === 'TS_NODE_SERVICE_BRAND')] ? options : exports.create(options ?? {});
      service.compile = cached(service.compile, service);
      return register.call(this, service);
    };
  }
  return exports;
};
