'use strict'

// spdy-transport as an HTTP client, the peer of our server
// (spdy/tests/interop_node.rs).
//
//   node interop/http_client.js <port> <2|3|3.1> <case> [hard-timeout-ms]
//
// Connects to 127.0.0.1:<port>, runs one case and exits by itself (exit 0
// after {"event":"done"}, 1 on a failed expectation, 3 after the hard
// timeout, default 20 s). One JSON object per line on stdout:
//
//   {"event":"response","path","status","headers","len","fnv"}   a body read to its end
//   {"event":"stream_error","path","message"}
//   ... case-specific events ...
//   {"event":"done","frames":{...},"rst":[...],"goaway":[...],"errors":[...]}
//
// The client is spdy-transport used directly, as
// /work/shared/NODE-SPDY-NOTES.md says (the `spdy` agent cannot send
// bodies on Node 20): transport.connection.create(socket, { protocol:
// 'spdy', isServer: false, windowSize }), conn.start(version),
// conn.request(...). Request bodies are pattern(seed, len) (http_common.js).
//
// Cases:
//   get       GET /data?len=100000&seed=1
//   post      POST /echo, 8 MiB streamed with backpressure; the echo read back
//   many      100 GET /many?i=I&n=100 at once (the server holds them until all arrived)
//   cancel    GET /stream?len=8MiB (reset after 256 KiB) beside two 1 MiB GETs,
//             then one more GET on the same connection
//   early     POST /early with a paced 1 MiB body, answered before it is read;
//             then GET /data on the same connection
//   trailers  POST /echo with a body and trailers (HEADERS, then DATA+FIN)
//   ping      PING the server, then GET /data
//   goaway    3 GET /hold?i=I&n=3 at once; after the server's GOAWAY a 4th
//             request (must be refused locally), then the 3 bodies to the end
//   raw       GET /push?len=N (expects a push), POST /trailers (expects
//             response trailers), and waits for a PING from the server

var net = require('net')
var c = require('./http_common')

var port = parseInt(process.argv[2], 10)
var version = c.parseVersion(process.argv[3])
var testCase = process.argv[4]
var hardMs = parseInt(process.argv[5] || '20000', 10)
c.hardTimeout(hardMs)

var frames = {}
var rsts = []
var goaways = []
var errors = []
var windowSize = testCase === 'post' ? 256 * 1024 : 1 << 20

var socket = net.connect({ port: port, host: '127.0.0.1' })
socket.setNoDelay(true)
socket.on('error', function (err) {
  errors.push('socket: ' + err.message)
  c.emit({ event: 'socket_error', message: String(err.message) })
})
var closed = false
var doneCode = null
socket.on('close', function () {
  closed = true
  c.emit({ event: 'socket_closed' })
  if (doneCode !== null) c.exitSoon(doneCode)
})

var conn = c.transport.connection.create(socket, {
  protocol: 'spdy',
  isServer: false,
  windowSize: windowSize
})
conn.on('frame', function (frame) {
  frames[frame.type] = (frames[frame.type] || 0) + 1
  if (frame.type === 'RST') rsts.push({ id: frame.id, code: frame.code })
  if (frame.type === 'GOAWAY') {
    goaways.push({ lastId: frame.lastId, code: frame.code })
    c.emit({ event: 'goaway', lastId: frame.lastId, code: frame.code })
  }
})
conn.on('error', function (err) {
  errors.push(String(err && err.message))
  c.emit({ event: 'conn_error', message: String(err && err.message) })
})
conn.start(version)
c.liftV2SendWindow(conn)

function finish (code) {
  if (doneCode !== null) return
  doneCode = code
  c.emit({ event: 'done', code: code, frames: frames, rst: rsts, goaway: goaways, errors: errors })
  if (closed) {
    c.exitSoon(code)
    return
  }
  // GOAWAY, then spdy-transport closes the socket once no stream is open
  // (connection.js:700-741); exit on the socket's 'close'.
  conn.end()
  setTimeout(function () {
    c.emit({ event: 'exit_without_close' })
    c.exitSoon(code)
  }, 3000).unref()
}

function fail (what) {
  c.emit({ event: 'fail', message: what })
  finish(1)
}

// Sends a request; calls back (err, {status, headers, len, fnv, trailers})
// once the response body ended. `body` is written with backpressure, then
// `trailers` (HEADERS) if any, then FIN.
function request (method, path, body, trailers, cb, onData) {
  var stream = conn.request({
    method: method,
    path: path,
    host: '127.0.0.1',
    headers: Buffer.isBuffer(body) ? { 'content-length': String(body.length) } : {}
  }, function (err) {
    if (err) {
      finished = true
      cb(err)
    }
  })
  var finished = false
  var result = { path: path, status: null, headers: null, len: 0, fnv: null, trailers: null }
  var fnv = new c.Fnv()
  stream.on('response', function (status, headers) {
    result.status = status
    result.headers = headers
  })
  stream.on('headers', function (headers) { result.trailers = headers })
  stream.on('data', function (d) {
    fnv.update(d)
    if (onData) onData(stream, fnv.len)
  })
  stream.on('end', function () {
    if (finished) return
    finished = true
    result.len = fnv.len
    result.fnv = fnv.hex()
    c.emit(Object.assign({ event: 'response' }, result))
    cb(null, result)
  })
  stream.on('error', function (err) {
    c.emit({ event: 'stream_error', path: path, message: String(err.message) })
    if (finished) return
    finished = true
    cb(err)
  })
  // A RST_STREAM CANCEL aborts the stream without an error (stream.js:278-283,
  // 613-655). 'close' also comes before 'end' on a normal end (FIN received,
  // data not yet read out; stream.js:396-411), and a reset right after the
  // FIN does not take back what arrived: both wait for 'end'.
  stream.on('close', function () {
    if (finished || stream.interopCancelled || !stream._spdyState.aborted) return
    if (stream._readableState.ended) return
    finished = true
    var err = new Error('stream reset before the end of the response')
    c.emit({ event: 'stream_error', path: path, message: err.message })
    cb(err)
  })
  if (method !== 'GET' && body !== 'manual') {
    c.writeAll(stream, body || Buffer.alloc(0), 64 * 1024, null, function (err) {
      if (err) return
      if (trailers) {
        stream.sendHeaders(trailers, function () { stream.end() })
      } else {
        stream.end()
      }
    })
  }
  return stream
}

function get (path, cb, onData) {
  return request('GET', path, null, null, cb, onData)
}

var cases = {}

cases.get = function () {
  get('/data?len=100000&seed=1', function (err) {
    if (err) return fail('GET: ' + err.message)
    finish(0)
  })
}

cases.post = function () {
  var body = c.pattern(7, 8 << 20)
  c.emit({ event: 'request_body', len: body.length, fnv: c.fnvHex(body) })
  request('POST', '/echo', body, null, function (err) {
    if (err) return fail('POST: ' + err.message)
    finish(0)
  })
}

cases.many = function () {
  var n = 100
  var left = n
  var failed = 0
  for (var i = 0; i < n; i++) {
    get('/many?i=' + i + '&n=' + n, function (err) {
      if (err) failed++
      if (--left === 0) {
        c.emit({ event: 'many', n: n, failed: failed })
        finish(failed ? 1 : 0)
      }
    })
  }
}

cases.cancel = function () {
  var left = 3
  function one (err) {
    if (err) return fail(err.message)
    if (--left > 0) return
    // The session must still work after the reset.
    get('/data?len=5000&seed=9', function (err) {
      if (err) return fail('GET after cancel: ' + err.message)
      finish(0)
    })
  }
  var cancelled = false
  get('/stream?len=' + (8 << 20) + '&seed=3', function (err) {
    fail('the cancelled stream ended: ' + (err ? err.message : 'normally'))
  }, function (stream, received) {
    if (cancelled || received < 256 * 1024) return
    cancelled = true
    stream.interopCancelled = true
    c.emit({ event: 'cancelled', path: '/stream', stream: stream.id, received: received })
    stream.abort() // RST_STREAM CANCEL (stream.js:613-655)
    one(null)
  })
  get('/data?len=' + (1 << 20) + '&seed=4', one)
  get('/data?len=' + (1 << 20) + '&seed=5', one)
}

cases.early = function () {
  // The server answers without reading the body; the upload is paced
  // (32 KiB every 5 ms, 1 MiB) so that it is still going on then, in SPDY/2
  // (no flow control) as in 3 and 3.1.
  var body = c.pattern(43, 1 << 20)
  var stream = request('POST', '/early?len=1000&seed=41', 'manual', null, function (err) {
    if (err) return fail('POST /early: ' + err.message)
    get('/data?len=5000&seed=9', function (err) {
      if (err) return fail('GET after /early: ' + err.message)
      finish(0)
    })
  })
  var offset = 0
  function step () {
    if (stream._spdyState.aborted) return
    if (offset >= body.length) {
      stream.end()
      c.emit({ event: 'upload_complete', len: body.length })
      return
    }
    stream.write(body.slice(offset, offset + 32768))
    offset += 32768
    setTimeout(step, 5)
  }
  step()
}

cases.trailers = function () {
  var body = c.pattern(11, 300000)
  request('POST', '/echo', body, { 'x-checksum': c.fnvHex(body) }, function (err) {
    if (err) return fail('POST with trailers: ' + err.message)
    finish(0)
  })
}

cases.ping = function () {
  var start = Date.now()
  conn.ping(function (err) {
    c.emit({ event: 'pong', error: err ? String(err.message) : null, ms: Date.now() - start })
    get('/data?len=1000&seed=2', function (err) {
      if (err) return fail('GET after ping: ' + err.message)
      finish(0)
    })
  })
}

cases.goaway = function () {
  var n = 3
  var left = n
  var sawGoaway = false
  function one (err) {
    if (err) return fail('held stream: ' + err.message)
    if (--left === 0) finish(sawGoaway ? 0 : 1)
  }
  conn.on('frame', function (frame) {
    if (frame.type !== 'GOAWAY' || sawGoaway) return
    sawGoaway = true
    // 'frame' is emitted before the connection handles the GOAWAY
    // (connection.js:277 vs 335): ask for a new stream once it has.
    setImmediate(function () {
      // A new request after the GOAWAY must not be sent (connection.js:614-626).
      var s = conn.request({ method: 'GET', path: '/data?len=10&seed=1', host: '127.0.0.1', headers: {} },
        function (err) {
          c.emit({ event: 'after_goaway', refused: !!err, message: err ? String(err.message) : null })
        })
      s.on('error', function () {})
    })
  })
  for (var i = 0; i < n; i++) get('/hold?i=' + i + '&n=' + n, one)
}

cases.raw = function () {
  var left = 3
  var pingSeen = false
  function one () {
    if (--left === 0) finish(0)
  }
  conn.on('ping', function () {
    if (pingSeen) return
    pingSeen = true
    c.emit({ event: 'ping_received' })
    one()
  })
  var main = get('/push?len=70000&seed=21', function (err) {
    if (err) return fail('GET /push: ' + err.message)
    pushDone()
  })
  var pending = 2
  function pushDone () {
    if (--pending === 0) {
      // Then response trailers.
      var body = c.pattern(23, 100000)
      request('POST', '/trailers', body, null, function (err) {
        if (err) return fail('POST /trailers: ' + err.message)
        one()
      })
      one()
    }
  }
  main.on('pushPromise', function (push) {
    var fnv = new c.Fnv()
    var status = null
    var headers = null
    push.on('response', function (s, h) {
      status = s
      headers = h
    })
    push.on('data', function (d) { fnv.update(d) })
    push.on('error', function (err) {
      c.emit({ event: 'push_error', message: String(err.message) })
    })
    push.on('end', function () {
      c.emit({
        event: 'push',
        path: push.path,
        method: push.method,
        request_headers: push.headers,
        status: status,
        headers: headers,
        len: fnv.len,
        fnv: fnv.hex()
      })
      pushDone()
    })
  })
}

if (!cases[testCase]) {
  c.emit({ event: 'fail', message: 'unknown case ' + testCase })
  c.exitSoon(2)
} else {
  cases[testCase]()
}
