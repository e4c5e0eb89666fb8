'use strict';
// nodup for Node.js: the addon (nodup.node, built from bindings/node/src)
// does the work; this file only loads it. index.d.ts documents the API.
const native = require('./nodup.node');

module.exports = {
  connect: native.connect,
  Connection: native.Connection,
  codes: Object.freeze(native.codes),
  libversion: native.libversion,
};
