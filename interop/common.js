'use strict'

// Shared helpers for encode.js / decode.js / selftest.js.
//
// Loads spdy-transport *through* the `spdy` package (it is spdy@4.0.2's own
// dependency, not ours), and builds the SPDY framer / parser exactly the way
// spdy-transport's Connection does (node_modules/spdy-transport/lib/
// spdy-transport/connection.js:28-128 and :212-249).

var path = require('path')
var EventEmitter = require('events').EventEmitter

var spdyDir = path.dirname(require.resolve('spdy/package.json'))
var transportPkgPath = require.resolve('spdy-transport/package.json', {
  paths: [spdyDir]
})
var transportDir = path.dirname(transportPkgPath)

var EXPECTED_SPDY = '4.0.2'
var EXPECTED_TRANSPORT = '3.0.0'

var spdyVersion = require(path.join(spdyDir, 'package.json')).version
var transportVersion = require(transportPkgPath).version
if (spdyVersion !== EXPECTED_SPDY || transportVersion !== EXPECTED_TRANSPORT) {
  // The quirks documented in README.md (with line numbers) are for exactly
  // these versions; refuse to silently test something else.
  throw new Error('expected spdy@' + EXPECTED_SPDY + ' / spdy-transport@' +
    EXPECTED_TRANSPORT + ', found spdy@' + spdyVersion +
    ' / spdy-transport@' + transportVersion)
}

var transport = require(transportDir)
var spdyProto = transport.protocol.spdy // lib/spdy-transport/protocol/spdy/
var constants = spdyProto.constants
var baseUtils = transport.protocol.base.utils

// CLI / JSON version string -> the version value spdy-transport uses
// internally (`connection.start(2 | 3 | 3.1)`, spdy/lib/spdy/server.js:121-125).
function parseVersion (arg) {
  if (arg === '2' || arg === 2) return 2
  if (arg === '3' || arg === 3) return 3
  if (arg === '3.1' || arg === 3.1) return 3.1
  throw new Error('version must be one of 2, 3, 3.1 (got ' + arg + ')')
}

function versionString (v) {
  return v === 3.1 ? '3.1' : String(v)
}

// Connection-level flow-control window, as connection.js:53-69 builds it
// (windowSize defaults to 1 MiB there).
function makeConnectionWindow (isServer) {
  var windowSize = 1 << 20
  var window = new transport.Window({
    id: 0,
    isServer: isServer,
    recv: { size: constants.DEFAULT_WINDOW, max: constants.MAX_INITIAL_WINDOW_SIZE },
    send: { size: constants.DEFAULT_WINDOW, max: constants.MAX_INITIAL_WINDOW_SIZE }
  })
  window.recv.setMax(windowSize)
  return window
}

// zlib pair, as connection.js:86 (pool) + :224 (pool.get(version)).
// `headerCompression` is the connection option of the same name; neither the
// `spdy` server nor its agent sets it, so node-spdy's default is *false*,
// which means deflate level Z_NO_COMPRESSION (zlib-pool.js:15).
function makeZlibPair (version, headerCompression) {
  var pool = spdyProto.compressionPool.create(headerCompression)
  return pool.get(version)
}

function makeFramer (version, opts) {
  opts = opts || {}
  var isServer = opts.isServer !== undefined ? opts.isServer : true
  var framer = spdyProto.framer.create({
    window: makeConnectionWindow(isServer),
    timeout: new transport.utils.Timeout(new EventEmitter()) // delay 0: inert
  })
  // connection.js:126-128: SPDY has PUSH enabled on servers
  framer.enablePush(isServer)
  var pair = makeZlibPair(version, !!opts.headerCompression)
  // connection.js:223-228
  framer.setCompression(pair)
  framer.setVersion(version)
  return framer
}

function makeParser (version, opts) {
  opts = opts || {}
  var isServer = opts.isServer !== undefined ? opts.isServer : true
  var parser = spdyProto.parser.create({
    isServer: isServer, // only used to tell PING from PING "ack" (parser.js:439-442)
    window: makeConnectionWindow(isServer)
  })
  var pair = makeZlibPair(version, false) // the inflate side ignores the flag
  // connection.start(version) -> parser.setVersion -> _onVersion -> setCompression
  parser.setVersion(version)
  parser.setCompression(pair)
  return parser
}

// SPDY 3-bit priority <-> what spdy-transport hands around (an HTTP/2 weight).
// protocol/base/utils.js:30-36: weightToPriority / priorityToWeight.
// priorityToWeight(p) = 5p + 1, injective on 0..7, so it can be inverted exactly.
function weightToWirePriority3 (weight) {
  for (var p = 0; p < 8; p++) {
    if (baseUtils.priorityToWeight(p) === weight) return p
  }
  throw new Error('weight ' + weight + ' is not priorityToWeight(0..7)')
}

// Sort [name, value] pairs by name, then value (UTF-16 code unit order, which
// is byte order for ASCII).
function sortHeaders (list) {
  return list.slice().sort(function (a, b) {
    if (a[0] !== b[0]) return a[0] < b[0] ? -1 : 1
    if (a[1] !== b[1]) return a[1] < b[1] ? -1 : 1
    return 0
  })
}

module.exports = {
  transport: transport,
  transportDir: transportDir,
  spdyProto: spdyProto,
  constants: constants,
  baseUtils: baseUtils,
  parseVersion: parseVersion,
  versionString: versionString,
  makeFramer: makeFramer,
  makeParser: makeParser,
  weightToWirePriority3: weightToWirePriority3,
  sortHeaders: sortHeaders
}
