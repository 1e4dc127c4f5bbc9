'use strict'

// usage: node interop/encode.js <2|3|3.1> [--header-compression=on|off]
//
// Encodes a fixed, varied sequence of SPDY frames with spdy-transport's own
// framer (node_modules/spdy-transport/lib/spdy-transport/protocol/spdy/
// framer.js), set up as a spdy-transport connection sets it up (common.js),
// and prints ONE JSON document:
//
//   {"version":"3.1","frames":[{"hex":"...","frame":{...}}, ...]}
//
// `hex` is exactly the bytes the framer pushed for that frame (captured at the
// framer's Readable#push, i.e. what would be written to the socket), in order.
// `frame` is the normalized wire-level description. It is written out
// explicitly below from a reading of framer.js (line numbers in comments),
// and selftest.js checks it against what spdy-transport's own parser makes of
// the bytes (decode.js).
//
// --header-compression: the `headerCompression` connection option.
//   on  (default here): zlib level Z_DEFAULT_COMPRESSION, so header blocks
//       really use the dictionary and back-references into earlier blocks;
//   off: what node-spdy actually does by default (neither spdy's server nor
//       its agent sets the option): level Z_NO_COMPRESSION, i.e. stored
//       blocks, still with the dictionary id in the zlib header.
// Both end every header block with a Z_SYNC_FLUSH (00 00 ff ff).

var common = require('./common')

// ---------------------------------------------------------------------------
// Helpers that spell out what framer.js puts on the wire.

// Header names the framer adds itself. v2 uses bare names (framer.js:162-170,
// :241-243), v3/3.1 use ':'-prefixed names (framer.js:171-178, :244-246).
function names (version) {
  var v3 = version >= 3
  return {
    method: v3 ? ':method' : 'method',
    path: v3 ? ':path' : 'url',
    version: v3 ? ':version' : 'version',
    scheme: v3 ? ':scheme' : 'scheme',
    host: v3 ? ':host' : 'host',
    status: v3 ? ':status' : 'status'
  }
}

// SYN_STREAM priority byte = weightToPriority(weight) << 5 for EVERY version
// (framer.js:200-205). weightToPriority: weight 1->0, 11->2, 16->3, 21->4,
// 36..256->7 (protocol/base/utils.js:30-32). The v2 wire field is only the top
// 2 bits of that byte (spec: "Pri | Unused(14)"), so the v2 wire value is
// p3 >> 1 (and bit 0x20, "unused" in v2, carries p3 & 1).
function wirePriority (version, p3) {
  return version >= 3 ? p3 : p3 >> 1
}

function dataPattern (n) {
  var b = Buffer.alloc(n)
  for (var i = 0; i < n; i++) b[i] = (i * 7 + (i >> 8)) & 0xff
  return b
}

// ---------------------------------------------------------------------------
// The sequence. Each step: `call(framer, cb)` invokes one framer method,
// `expect` is the normalized frame that must result.

function steps (version) {
  var v3 = version >= 3
  var N = names(version)
  var s = []

  function add (call, expect) { s.push({ call: call, expect: expect }) }

  function settingsEntries (list) {
    // framer.js:451-458: every entry gets FLAG_SETTINGS_PERSIST_VALUE (0x01),
    // never PERSISTED; entries come out in settingsIndex (= id) order.
    return list.map(function (e) {
      return { id: e[0], value: e[1], persist: true, persisted: false }
    })
  }

  // 1. The SETTINGS a connection sends first (connection.js:238-243).
  //    max_concurrent_streams is Infinity by default and skipped
  //    (framer.js:432); max_header_list_size / enable_push have no SPDY id
  //    (constants.js:65-75 settingsIndex) and are skipped.
  add(function (f, cb) {
    f.settingsFrame({
      max_header_list_size: Infinity,
      max_concurrent_streams: Infinity,
      enable_push: 1,
      initial_window_size: 1 << 20
    }, cb)
  }, { type: 'SETTINGS', clear: false, entries: settingsEntries([[7, 1048576]]) })

  // 2. SPDY/3.1: the session WINDOW_UPDATE sent right after (connection.js:246,
  //    :475-493): 1 MiB - 64 KiB.
  if (version === 3.1) {
    add(function (f, cb) { f.windowUpdateFrame({ id: 0, delta: 983040 }, cb) },
      { type: 'WINDOW_UPDATE', stream_id: 0, delta: 983040 })
  }

  // 3. SETTINGS with every id the framer knows (8 = CLIENT_CERTIFICATE_VECTOR_SIZE
  //    is SPDY/3 only, so left out for v2).
  var all = {
    upload_bandwidth: 1000,
    download_bandwidth: 5000,
    round_trip_time: 150,
    max_concurrent_streams: 100,
    current_cwnd: 10,
    download_retrans_rate: 3,
    initial_window_size: 65535
  }
  var allEntries = [[1, 1000], [2, 5000], [3, 150], [4, 100], [5, 10], [6, 3], [7, 65535]]
  if (v3) {
    all.client_certificate_vector_size = 8
    allEntries.push([8, 8])
  }
  add(function (f, cb) { f.settingsFrame(all, cb) },
    { type: 'SETTINGS', clear: false, entries: settingsEntries(allEntries) })

  // 4. PING: the framer writes the LAST 4 bytes of `opaque` (framer.js:380-381).
  add(function (f, cb) {
    f.pingFrame({ opaque: Buffer.from([0, 0, 0, 1]), ack: false }, cb)
  }, { type: 'PING', id: 1 })

  // 5. Request SYN_STREAM (framer.js:147-230). User header names are
  //    lower-cased (:47-50); `connection` etc. are dropped (:66-67); a `host`
  //    header is dropped for v3 (:62-64, it becomes :host) and, for v2,
  //    overwritten by frame.host (:167); arrays are joined with NUL (:34-35).
  var h1 = [
    [N.host, 'example.com'],
    [N.method, 'GET'],
    [N.path, '/index.html?q=spdy'],
    [N.scheme, 'https'],
    [N.version, 'HTTP/1.1'],
    ['accept', 'text/html'],
    ['accept-encoding', 'gzip, deflate'],
    ['user-agent', 'spdy-rs-interop/1'],
    ['x-multi', 'one\u0000two\u0000three']
  ]
  add(function (f, cb) {
    f.requestFrame({
      id: 1,
      fin: true,
      method: 'GET',
      path: '/index.html?q=spdy',
      host: 'example.com',
      priority: { weight: 16, parent: 0, exclusive: false },
      headers: {
        Accept: 'text/html',
        'User-Agent': 'spdy-rs-interop/1',
        'accept-encoding': 'gzip, deflate',
        'X-Multi': ['one', 'two', 'three'],
        Connection: 'keep-alive',
        Host: 'ignored.example'
      }
    }, cb)
  }, {
    type: 'SYN_STREAM',
    stream_id: 1,
    associated_id: 0,
    priority: wirePriority(version, 3),
    fin: true,
    unidirectional: false,
    headers: h1
  })

  // 6. Request SYN_STREAM with explicit scheme/version, a number-valued
  //    header (stringified, framer.js:39), weight 1 -> priority 0, no FIN.
  add(function (f, cb) {
    f.requestFrame({
      id: 3,
      fin: false,
      method: 'POST',
      path: '/upload',
      host: 'example.com:8443',
      scheme: 'http',
      version: 'HTTP/1.0',
      priority: { weight: 1, parent: 0, exclusive: false },
      headers: { 'content-type': 'application/octet-stream', 'content-length': 20000 }
    }, cb)
  }, {
    type: 'SYN_STREAM',
    stream_id: 3,
    associated_id: 0,
    priority: wirePriority(version, 0),
    fin: false,
    unidirectional: false,
    headers: [
      [N.host, 'example.com:8443'],
      [N.method, 'POST'],
      [N.path, '/upload'],
      [N.scheme, 'http'],
      [N.version, 'HTTP/1.0'],
      ['content-length', '20000'],
      ['content-type', 'application/octet-stream']
    ]
  })

  // 7. Minimal request: defaults GET / HTTP/1.1 / https / localhost
  //    (framer.js:155-160, base/constants.js:1-2); weight 256 -> priority 7.
  add(function (f, cb) {
    f.requestFrame({ id: 5, fin: true, path: '/', priority: { weight: 256 } }, cb)
  }, {
    type: 'SYN_STREAM',
    stream_id: 5,
    associated_id: 0,
    priority: wirePriority(version, 7),
    fin: true,
    unidirectional: false,
    headers: [
      [N.host, 'localhost'],
      [N.method, 'GET'],
      [N.path, '/'],
      [N.scheme, 'https'],
      [N.version, 'HTTP/1.1']
    ]
  })

  // 8. SYN_REPLY (framer.js:232-278): adds status "<code> <reason>" and
  //    version "HTTP/1.1"; flags are always 0 (no FIN possible);
  //    transfer-encoding is dropped.
  add(function (f, cb) {
    f.responseFrame({
      id: 1,
      status: 200,
      headers: {
        'Content-Type': 'text/html; charset=utf-8',
        'set-cookie': ['a=1', 'b=2; Path=/'],
        'transfer-encoding': 'chunked',
        'x-served-by': 'spdy-transport'
      }
    }, cb)
  }, {
    type: 'SYN_REPLY',
    stream_id: 1,
    fin: false,
    headers: [
      [N.status, '200 OK'],
      [N.version, 'HTTP/1.1'],
      ['content-type', 'text/html; charset=utf-8'],
      ['set-cookie', 'a=1\u0000b=2; Path=/'],
      ['x-served-by', 'spdy-transport']
    ]
  })

  // 9. Push SYN_STREAM (framer.js:280-301): id = promisedId, associated = id,
  //    request pseudo-headers + status "200" (no reason phrase!), request and
  //    response headers merged; flags 0: no FIN and NO UNIDIRECTIONAL flag.
  add(function (f, cb) {
    f.pushFrame({
      id: 1,
      promisedId: 2,
      method: 'GET',
      path: '/style.css',
      host: 'example.com',
      status: 200,
      priority: { weight: 11, parent: 1, exclusive: false },
      headers: { accept: 'text/css' },
      response: { 'content-type': 'text/css', 'cache-control': 'max-age=60' }
    }, cb)
  }, {
    type: 'SYN_STREAM',
    stream_id: 2,
    associated_id: 1,
    priority: wirePriority(version, 2),
    fin: false,
    unidirectional: false,
    headers: [
      [N.host, 'example.com'],
      [N.method, 'GET'],
      [N.path, '/style.css'],
      [N.scheme, 'https'],
      [N.status, '200'],
      [N.version, 'HTTP/1.1'],
      ['accept', 'text/css'],
      ['cache-control', 'max-age=60'],
      ['content-type', 'text/css']
    ]
  })

  // 10. SYN_REPLY with an explicit reason phrase.
  add(function (f, cb) {
    f.responseFrame({ id: 3, status: 404, reason: 'Not Here', headers: { 'content-length': '0' } }, cb)
  }, {
    type: 'SYN_REPLY',
    stream_id: 3,
    fin: false,
    headers: [
      [N.status, '404 Not Here'],
      [N.version, 'HTTP/1.1'],
      ['content-length', '0']
    ]
  })

  // 11. HEADERS (framer.js:303-330): flags always 0, no headers added; `host`
  //     is dropped for v3 only (framer.js:62).
  var h11 = [['x-checksum', 'abc\u0000def'], ['x-trailer', 'done']]
  if (!v3) h11.unshift(['host', 'h.example'])
  add(function (f, cb) {
    f.headersFrame({
      id: 1,
      headers: { 'X-Trailer': 'done', 'x-checksum': ['abc', 'def'], Host: 'h.example' }
    }, cb)
  }, { type: 'HEADERS', stream_id: 1, fin: false, headers: h11 })

  // 12. HEADERS on the pushed stream.
  add(function (f, cb) { f.headersFrame({ id: 2, headers: { etag: '"xyz"' } }, cb) },
    { type: 'HEADERS', stream_id: 2, fin: false, headers: [['etag', '"xyz"']] })

  // 13-17. DATA (framer.js:332-370): flags = FIN ? 1 : 0. The framer writes
  //        the whole buffer as one frame (splitting into maxChunk=8 KiB pieces
  //        happens in stream.js, not here).
  function data (id, buf, fin) {
    add(function (f, cb) { f.dataFrame({ id: id, fin: fin, data: buf }, cb) },
      { type: 'DATA', stream_id: id, fin: fin, data_hex: buf.toString('hex') })
  }
  data(2, Buffer.from('body { color: red }\n'), false)
  data(2, Buffer.alloc(0), true)
  data(1, dataPattern(20000), false)
  data(1, Buffer.from('tail'), true)
  data(3, Buffer.alloc(0), false)

  // 18. Stream WINDOW_UPDATEs (framer.js:471-486, delta written as Int32BE).
  //     stream.js:257 / :570 send these on v2 connections too, but v2 has no
  //     WINDOW_UPDATE frame, so the sequence only has them for v3/3.1.
  if (v3) {
    add(function (f, cb) { f.windowUpdateFrame({ id: 1, delta: 1000 }, cb) },
      { type: 'WINDOW_UPDATE', stream_id: 1, delta: 1000 })
    add(function (f, cb) { f.windowUpdateFrame({ id: 3, delta: 0x7fffffff }, cb) },
      { type: 'WINDOW_UPDATE', stream_id: 3, delta: 0x7fffffff })
  }

  // 19. RST_STREAM (framer.js:385-403): status = constants.error[code]
  //     (constants.js:35-48).
  var rsts = [
    [3, 'CANCEL', 5],
    [5, 'REFUSED_STREAM', 3],
    [7, 'PROTOCOL_ERROR', 1],
    [9, 'INVALID_STREAM', 2],
    [11, 'UNSUPPORTED_VERSION', 4],
    [13, 'INTERNAL_ERROR', 6],
    [15, 'FLOW_CONTROL_ERROR', 7]
  ]
  if (v3) {
    rsts.push([17, 'STREAM_IN_USE', 8], [19, 'STREAM_CLOSED', 9],
      [21, 'INVALID_CREDENTIALS', 10], [23, 'FRAME_TOO_LARGE', 11])
  }
  rsts.forEach(function (r) {
    add(function (f, cb) { f.rstFrame({ id: r[0], code: r[1] }, cb) },
      { type: 'RST_STREAM', stream_id: r[0], status: r[2] })
  })

  // 20. PINGs: an 8-byte opaque (only its last 4 bytes are sent) and a big id.
  add(function (f, cb) {
    f.pingFrame({ opaque: Buffer.from('ffffffff00000002', 'hex'), ack: false }, cb)
  }, { type: 'PING', id: 2 })
  add(function (f, cb) {
    f.pingFrame({ opaque: Buffer.from('fffffffe', 'hex'), ack: true }, cb)
  }, { type: 'PING', id: 0xfffffffe })

  // 21. Another request late in the stream: its headers largely repeat
  //     frame 5's, so with compression on it is mostly back-references into
  //     the shared zlib context. weight 21 -> priority 4.
  add(function (f, cb) {
    f.requestFrame({
      id: 7,
      fin: false,
      method: 'GET',
      path: '/index.html?q=spdy',
      host: 'example.com',
      priority: { weight: 21 },
      headers: {
        accept: 'text/html',
        'user-agent': 'spdy-rs-interop/1',
        'accept-encoding': 'gzip, deflate',
        'x-multi': ['one', 'two', 'three']
      }
    }, cb)
  }, {
    type: 'SYN_STREAM',
    stream_id: 7,
    associated_id: 0,
    priority: wirePriority(version, 4),
    fin: false,
    unidirectional: false,
    headers: h1
  })

  // 22. GOAWAY (framer.js:488-501): ALWAYS 8 bytes, last-good-id + status
  //     (constants.goaway, constants.js:81-85), also for v2 whose spec frame
  //     has no status word. For v2 the normalized status is null (see README).
  if (v3) {
    add(function (f, cb) { f.goawayFrame({ lastId: 3, code: 'PROTOCOL_ERROR' }, cb) },
      { type: 'GOAWAY', last_good_stream_id: 3, status: 1 })
    add(function (f, cb) { f.goawayFrame({ lastId: 0x7fffffff, code: 'INTERNAL_ERROR' }, cb) },
      { type: 'GOAWAY', last_good_stream_id: 0x7fffffff, status: 2 })
  }
  add(function (f, cb) { f.goawayFrame({ lastId: 7, code: 'OK' }, cb) },
    { type: 'GOAWAY', last_good_stream_id: 7, status: v3 ? 0 : null })

  return s
}

// ---------------------------------------------------------------------------

// Runs `calls` (each `function (framer, cb)` making one frame) through a fresh
// framer set up as a connection would; resolves to one Buffer per call.
function runFramer (version, opts, calls) {
  var framer = common.makeFramer(version, { headerCompression: !!opts.headerCompression })

  // Capture at Readable#push: the scheduler pushes every chunk of a frame and
  // then calls that frame's callback (protocol/base/scheduler.js:114-138, :142-184),
  // so the bytes pushed between two callbacks are exactly one frame. Each
  // call is awaited before the next, so the scheduler cannot reorder them.
  var pending = []
  var origPush = framer.push
  framer.push = function (chunk) {
    if (chunk !== null) pending.push(Buffer.from(chunk))
    return origPush.apply(this, arguments)
  }
  // Drain the readable side as the socket would (and cross-check below).
  var streamed = []
  framer.on('data', function (chunk) { streamed.push(Buffer.from(chunk)) })

  var out = []
  return new Promise(function (resolve, reject) {
    framer.on('error', reject)
    var i = 0
    function next () {
      if (i === calls.length) return finish()
      calls[i++](framer, function (err) {
        if (err) return reject(err)
        var bytes = Buffer.concat(pending)
        pending = []
        out.push(bytes)
        next()
      })
    }
    function finish () {
      // Let the readable side flush, then compare with the per-frame capture.
      setImmediate(function () {
        if (!Buffer.concat(out).equals(Buffer.concat(streamed))) {
          return reject(new Error('framer output stream differs from the per-frame capture'))
        }
        resolve(out)
      })
    }
    next()
  })
}

// Runs the sequence through a fresh framer; resolves to the JSON document.
function encode (versionArg, opts) {
  opts = opts || {}
  var version = common.parseVersion(versionArg)
  var headerCompression = opts.headerCompression !== undefined ? opts.headerCompression : true
  var list = steps(version)
  var calls = list.map(function (s) { return s.call })
  return runFramer(version, { headerCompression: headerCompression }, calls).then(function (bufs) {
    var frames = bufs.map(function (bytes, i) {
      checkFrameBytes(bytes, list[i].expect)
      return { hex: bytes.toString('hex'), frame: normalizeExpect(list[i].expect) }
    })
    return { version: common.versionString(version), frames: frames }
  })
}

// One complete frame: 8-byte header whose 24-bit length covers the rest.
function checkFrameBytes (bytes, expect) {
  if (bytes.length < 8) throw new Error('short frame for ' + expect.type)
  var len = bytes.readUIntBE(5, 3)
  if (len + 8 !== bytes.length) {
    throw new Error(expect.type + ': captured ' + bytes.length + ' bytes but length field says ' + (len + 8))
  }
}

function normalizeExpect (f) {
  var o = Object.assign({}, f)
  if (o.headers) o.headers = common.sortHeaders(o.headers)
  return o
}

module.exports = { encode: encode, steps: steps, runFramer: runFramer }

if (require.main === module) {
  var args = process.argv.slice(2)
  var versionArg = null
  var headerCompression = true
  args.forEach(function (a) {
    if (a === '--header-compression=on') headerCompression = true
    else if (a === '--header-compression=off') headerCompression = false
    else if (versionArg === null) versionArg = a
    else {
      console.error('unexpected argument: ' + a)
      process.exit(2)
    }
  })
  try {
    common.parseVersion(versionArg)
  } catch (e) {
    console.error('usage: node interop/encode.js <2|3|3.1> [--header-compression=on|off]')
    process.exit(2)
  }
  encode(versionArg, { headerCompression: headerCompression }).then(function (doc) {
    process.stdout.write(JSON.stringify(doc) + '\n')
  }, function (err) {
    console.error('encode failed: ' + (err && err.stack ? err.stack : err))
    process.exitCode = 1
  })
}
