// The errors livegate throws. Every one is `instanceof LivegateError` and
// carries `code`: the gateway's error code (docs/protocol.md) or one of this
// package's (`io`, `closed`, `bad_url`, `invalid`, `bad_payload`,
// `connect_timeout`). Argument and payload errors are also `TypeError`s,
// as Node's own argument errors are.
'use strict';

const brand = Symbol('livegate.error');

function define(name, Base, about) {
  const cls = {
    [name]: class extends Base {
      constructor(message, code, options) {
        super(message, options);
        this.name = name;
        this.code = code;
      }
    },
  }[name];
  cls.prototype[brand] = true;
  cls.about = about;
  return cls;
}

class LivegateError extends Error {
  constructor(message, code, options) {
    super(message, options);
    this.name = 'LivegateError';
    this.code = code;
  }

  // Subclasses extend Error or TypeError, not this class: they are told
  // apart by a brand, so `instanceof LivegateError` holds for all of them.
  static [Symbol.hasInstance](value) {
    return value != null && value[brand] === true;
  }
}
LivegateError.prototype[brand] = true;

const ConnectionError = define('ConnectionError', Error, 'the gateway could not be reached, or the network failed');
const ClosedError = define('ClosedError', Error, 'the client was closed (by the app, or by the gateway for good)');
const ProtocolError = define('ProtocolError', Error, 'the gateway refused a request (code says why) or sent something wrong');
const ArgumentError = define('ArgumentError', TypeError, 'a bad argument: URL, option, topic or event name');
const PayloadError = define('PayloadError', TypeError, 'the data cannot be encoded as a payload');

const byKind = {
  connection: ConnectionError,
  closed: ClosedError,
  protocol: ProtocolError,
  argument: ArgumentError,
  payload: PayloadError,
};

// The addon's errors read `livegate:<kind>:<code>:<message>` (src/errors.rs).
const NATIVE = /^livegate:([a-z]+):([^:]*):([\s\S]*)$/;

/** The livegate error a native error stands for (anything else unchanged). */
function fromNative(err) {
  const m = err instanceof Error ? NATIVE.exec(err.message) : null;
  if (!m) return err;
  const Cls = byKind[m[1]] || ProtocolError;
  return new Cls(m[3], m[2]);
}

module.exports = {
  LivegateError,
  ConnectionError,
  ClosedError,
  ProtocolError,
  ArgumentError,
  PayloadError,
  fromNative,
};
