'use strict'

// Shared helpers of http_server.js and http_client.js (the HTTP-level
// interop tests with spdy/tests/interop_node.rs).
//
// - pattern(seed, len): the deterministic body bytes both sides generate
//   (xorshift32, 4 bytes little-endian per step). Rust: `pattern()` in
//   spdy/tests/interop_node.rs.
// - Fnv: FNV-1a 64 over a byte stream, as 16 hex digits; computed in 32-bit
//   halves because JS has no fast 64-bit integers. Rust: `fnv()`.
// - emit(obj): one JSON object per line on stdout (the protocol with the
//   Rust test), and exitSoon(code): exit once stdout is flushed.
// - hardTimeout(ms): the script ends by itself even if the peer hangs.

var common = require('./common') // refuses anything but spdy@4.0.2 / spdy-transport@3.0.0

function pattern (seed, len) {
  var buf = Buffer.alloc(len)
  var x = ((seed >>> 0) ^ 0x9e3779b9) >>> 0
  if (x === 0) x = 1
  for (var i = 0; i < len; i += 4) {
    x ^= x << 13
    x >>>= 0
    x ^= x >>> 17
    x ^= x << 5
    x >>>= 0
    buf[i] = x & 0xff
    if (i + 1 < len) buf[i + 1] = (x >>> 8) & 0xff
    if (i + 2 < len) buf[i + 2] = (x >>> 16) & 0xff
    if (i + 3 < len) buf[i + 3] = (x >>> 24) & 0xff
  }
  return buf
}

// FNV-1a 64: h = (h ^ byte) * 0x100000001b3 mod 2^64, offset 0xcbf29ce484222325.
// With h = hi * 2^32 + lo and the prime = 2^40 + 0x1b3:
// h * prime = lo * 0x1b3 + 2^32 * (hi * 0x1b3 + (lo << 8)) mod 2^64.
function Fnv () {
  this.hi = 0xcbf29ce4
  this.lo = 0x84222325
  this.len = 0
}

Fnv.prototype.update = function update (buf) {
  var hi = this.hi
  var lo = this.lo
  for (var i = 0; i < buf.length; i++) {
    lo = (lo ^ buf[i]) >>> 0
    var low = lo * 0x1b3 // < 2^41: exact in a double
    var carry = Math.floor(low / 4294967296)
    hi = (Math.imul(hi, 0x1b3) + (lo << 8) + carry) >>> 0
    lo = low >>> 0
  }
  this.hi = hi
  this.lo = lo
  this.len += buf.length
  return this
}

Fnv.prototype.hex = function hex () {
  return ('00000000' + this.hi.toString(16)).slice(-8) +
    ('00000000' + this.lo.toString(16)).slice(-8)
}

function fnvHex (buf) {
  return new Fnv().update(buf).hex()
}

function emit (obj) {
  process.stdout.write(JSON.stringify(obj) + '\n')
}

var exiting = false
function exitSoon (code) {
  if (exiting) return
  exiting = true
  // Exit once everything written to stdout is flushed (a pipe may be async).
  process.stdout.write('', function () {
    process.exit(code)
  })
  setTimeout(function () { process.exit(code) }, 1000).unref()
}

function hardTimeout (ms) {
  var t = setTimeout(function () {
    emit({ event: 'timeout', ms: ms })
    exitSoon(3)
  }, ms)
  t.unref()
  return t
}

// Writes `buf` to a writable in `chunk`-byte pieces, honouring backpressure.
// `onProgress(sent)` after each accepted piece; `done(err)` at the end.
function writeAll (writable, buf, chunk, onProgress, done) {
  var offset = 0
  var finished = false
  function finish (err) {
    if (finished) return
    finished = true
    writable.removeListener('error', finish)
    done(err || null)
  }
  writable.once('error', finish)
  function step () {
    while (offset < buf.length) {
      if (finished) return
      var piece = buf.slice(offset, Math.min(buf.length, offset + chunk))
      offset += piece.length
      var last = offset === buf.length
      // `done` runs once the last piece is handed on (its callback), so
      // what the caller does next (trailers, end) comes after the data.
      var ok = writable.write(piece, last ? function (err) { finish(err) } : undefined)
      if (onProgress) onProgress(offset)
      if (!ok && !last) {
        writable.once('drain', step)
        return
      }
    }
    if (buf.length === 0) finish(null)
  }
  step()
}

// SPDY/2 has no flow control, but spdy-transport applies SPDY/3's stream
// send window to v2 sessions too: it stops after 64 KiB per stream and waits
// for a WINDOW_UPDATE, a frame a v2 peer never sends (stream.js:148-176,
// window.js:54-68, connection.js:72-83). On v2 we lift that window to 1 GiB
// on the connection's template (streams created later) and on `streams`.
var V2_SEND_WINDOW = 1 << 30
function liftV2SendWindow (conn, streams) {
  if (conn.getVersion() !== 2) return
  var template = conn._spdyState.streamWindow.send
  if (template.getMax() < V2_SEND_WINDOW) template.setMax(V2_SEND_WINDOW)
  ;(streams || []).forEach(function (stream) {
    var side = stream._spdyState.window.send
    if (side.getMax() < V2_SEND_WINDOW) side.setMax(V2_SEND_WINDOW)
    if (side.getCurrent() < V2_SEND_WINDOW) side.update(V2_SEND_WINDOW - side.getCurrent())
  })
}

function parseQuery (path) {
  var out = {}
  var q = path.indexOf('?')
  if (q < 0) return out
  path.slice(q + 1).split('&').forEach(function (kv) {
    var eq = kv.indexOf('=')
    if (eq > 0) out[kv.slice(0, eq)] = decodeURIComponent(kv.slice(eq + 1))
  })
  return out
}

module.exports = {
  transport: common.transport,
  parseVersion: common.parseVersion,
  versionString: common.versionString,
  pattern: pattern,
  Fnv: Fnv,
  fnvHex: fnvHex,
  emit: emit,
  exitSoon: exitSoon,
  hardTimeout: hardTimeout,
  writeAll: writeAll,
  liftV2SendWindow: liftV2SendWindow,
  parseQuery: parseQuery
}
