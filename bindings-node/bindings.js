// Loads the native addon that scripts/build.js built from source.
'use strict';
const path = require('node:path');

const file = path.join(__dirname, 'livegate.node');
try {
  module.exports = require(file);
} catch (e) {
  if (e && e.code === 'MODULE_NOT_FOUND') {
    throw new Error(`livegate: the native addon ${file} is missing; build it with ` +
      '`npm run build` in bindings-node (or reinstall the package), which needs cargo');
  }
  throw e;
}
