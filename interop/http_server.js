'use strict'

// node-spdy's HTTP server as the peer of our client (spdy/tests/interop_node.rs).
//
//   node interop/http_server.js <2|3|3.1> <case> [hard-timeout-ms]
//
// Listens on 127.0.0.1 with an OS-assigned port, serves ONE connection, and
// exits by itself when that connection closes (or after the hard timeout,
// default 20 s, with exit code 3). It prints one JSON object per line:
//
//   {"event":"listening","port":N}                  first line, always
//   {"event":"request","method","path","version","stream"}
//   {"event":"received","path","len","fnv","trailers"}   a request body read
//   {"event":"sent","path","stream","len","fnv"}      a response stream closed normally
//   {"event":"aborted","path","stream"}               a stream reset before its end
//   ... case-specific events (barrier, push_error, pong, goaway_sent) ...
//   {"event":"closed","frames":{...},"rst":[...],"errors":[...],"goaway":[...]}
//        frames received from the first request on: counts per type, and
//        every RST_STREAM and GOAWAY; node's connection errors
//
// `version` is what node-spdy negotiated (2, 3 or 3.1); `case` is only
// printed (the client picks the routes). The server is
// spdy.createServer({ spdy: { plain: true, ssl: false,
// connection: { autoSpdy31: true } } }): see /work/shared/NODE-SPDY-NOTES.md.
//
// Routes (every body is pattern(seed, len) from http_common.js):
//   GET  /data?len=N&seed=S     body of N bytes, headers x-len and x-fnv
//        [&pace=MS]             ... written 16 KiB every MS ms
//   POST /echo                  reads the whole body, then echoes it back
//   GET  /many?i=I&n=N          held until N of them are open at once
//   GET  /push?len=N&seed=S     pushes /pushed?len=N&seed=S+1, then answers
//   POST /trailers              reads body + trailers; answers with trailers
//   GET  /ping                  pings the client; answers once the pong is back
//   GET  /hold?i=I&n=N          on the N-th: GOAWAY, then answers all N slowly

var spdy = require('spdy')
var c = require('./http_common')

var version = c.parseVersion(process.argv[2])
var testCase = process.argv[3] || 'any'
var hardMs = parseInt(process.argv[4] || '20000', 10)
c.hardTimeout(hardMs)

var CHUNK = 64 * 1024

// Connection-level observations, printed with "closed".
var frames = {}
var rsts = []
var goaways = []
var errors = []
var hooked = null

function hookConnection (conn) {
  if (hooked === conn) return
  hooked = conn
  conn.on('frame', function (frame) {
    frames[frame.type] = (frames[frame.type] || 0) + 1
    if (frame.type === 'RST') rsts.push({ id: frame.id, code: frame.code })
    if (frame.type === 'GOAWAY') goaways.push({ lastId: frame.lastId, code: frame.code })
  })
  conn.on('error', function (err) {
    errors.push(String(err && err.message))
    c.emit({ event: 'conn_error', message: String(err && err.message) })
  })
}

function readBody (req, cb) {
  var chunks = []
  var fnv = new c.Fnv()
  var trailers = null
  req.on('trailers', function (headers) { trailers = headers })
  req.on('data', function (d) {
    fnv.update(d)
    chunks.push(d)
  })
  req.on('end', function () {
    cb(Buffer.concat(chunks), fnv, trailers)
  })
}

// Writes `body` to the response's spdy-transport stream and ends it (after
// `trailers`, as a HEADERS frame, if given); reports "sent" once the stream
// closes normally, or "aborted" if the client reset it.
//
// The body goes to req.spdyStream, not through `res`: on Node 20 a response
// written through `res` in more than one tick is destroyed by handle-thing
// (ERR_MULTIPLE_CALLBACK, then RST_STREAM CANCEL); see interop/README.md.
// res.writeHead() still sends the SYN_REPLY (spdy/lib/spdy/response.js:59).
function sendBody (req, res, path, body, options) {
  options = options || {}
  var stream = req.spdyStream
  watchStream(stream, path, body)
  c.writeAll(stream, body, options.chunk || CHUNK, null, function (err) {
    if (err) return
    if (options.trailers) {
      stream.sendHeaders(options.trailers, function () { stream.end() })
    } else {
      stream.end()
    }
  })
}

// "sent" or "aborted" when `stream` closes (stream.js:396-411, 613-655).
function watchStream (stream, path, body) {
  stream.once('close', function () {
    if (stream._spdyState.aborted) {
      c.emit({ event: 'aborted', path: path, stream: stream.id })
    } else {
      c.emit({ event: 'sent', path: path, stream: stream.id, len: body.length, fnv: c.fnvHex(body) })
    }
  })
}

function dataHeaders (body, extra) {
  var h = {
    'content-type': 'application/octet-stream',
    'x-len': String(body.length),
    'x-fnv': c.fnvHex(body)
  }
  Object.keys(extra || {}).forEach(function (k) { h[k] = extra[k] })
  return h
}

var manyHeld = []
var holdHeld = []

function handler (req, res) {
  var stream = req.spdyStream
  hookConnection(stream.connection)
  c.liftV2SendWindow(stream.connection, [stream])
  var path = req.url
  var route = path.split('?')[0]
  var q = c.parseQuery(path)
  c.emit({
    event: 'request',
    method: req.method,
    path: path,
    version: req.spdyVersion,
    stream: stream.id
  })

  if (route === '/data') {
    var body = c.pattern(parseInt(q.seed || '1', 10), parseInt(q.len || '0', 10))
    res.writeHead(200, dataHeaders(body))
    if (q.pace) {
      pacedSend(req, res, path, body, parseInt(q.pace, 10))
    } else {
      sendBody(req, res, path, body)
    }
  } else if (route === '/echo') {
    readBody(req, function (buf, fnv, trailers) {
      c.emit({ event: 'received', path: path, len: fnv.len, fnv: fnv.hex(), trailers: trailers })
      res.writeHead(200, dataHeaders(buf, { 'x-received-fnv': fnv.hex() }))
      sendBody(req, res, path, buf)
    })
  } else if (route === '/many') {
    var n = parseInt(q.n, 10)
    manyHeld.push({ req: req, res: res, i: parseInt(q.i, 10), path: path })
    if (manyHeld.length === n) {
      c.emit({ event: 'barrier', n: n })
      manyHeld.forEach(function (h) {
        var b = c.pattern(1000 + h.i, 1000 + 37 * h.i)
        h.res.writeHead(200, dataHeaders(b))
        sendBody(h.req, h.res, h.path, b)
      })
    }
  } else if (route === '/push') {
    var len = parseInt(q.len || '1000', 10)
    var seed = parseInt(q.seed || '1', 10)
    var pushedPath = '/pushed?len=' + len + '&seed=' + (seed + 1)
    var pushedBody = c.pattern(seed + 1, len)
    var push = res.push(pushedPath, {
      request: { accept: '*/*' },
      response: dataHeaders(pushedBody)
    })
    push.on('error', function (err) {
      c.emit({ event: 'push_error', path: pushedPath, message: String(err.message) })
    })
    push.on('close', function () {
      c.emit({ event: 'push_closed', path: pushedPath })
    })
    c.writeAll(push, pushedBody, CHUNK, null, function (err) {
      if (err) return
      push.end()
      c.emit({ event: 'push_sent', path: pushedPath, len: len, fnv: c.fnvHex(pushedBody) })
    })
    var main = c.pattern(seed, len)
    res.writeHead(200, dataHeaders(main))
    sendBody(req, res, path, main)
  } else if (route === '/trailers') {
    readBody(req, function (buf, fnv, trailers) {
      c.emit({ event: 'received', path: path, len: fnv.len, fnv: fnv.hex(), trailers: trailers })
      var seen = trailers && trailers['x-checksum'] ? trailers['x-checksum'] : 'none'
      res.writeHead(200, dataHeaders(buf, { 'x-trailer-seen': seen }))
      sendBody(req, res, path, buf, { trailers: { 'x-body-fnv': fnv.hex(), 'x-body-len': String(fnv.len) } })
    })
  } else if (route === '/ping') {
    var start = Date.now()
    stream.connection.ping(function (err) {
      c.emit({ event: 'pong', error: err ? String(err.message) : null, ms: Date.now() - start })
      var b = Buffer.from('pong')
      res.writeHead(200, dataHeaders(b))
      sendBody(req, res, path, b)
    })
  } else if (route === '/hold') {
    var want = parseInt(q.n, 10)
    holdHeld.push({ req: req, res: res, i: parseInt(q.i, 10), path: path })
    if (holdHeld.length === want) {
      var conn = stream.connection
      c.emit({ event: 'goaway_sent', lastId: conn._spdyState.stream.lastId.both })
      // connection.js:743-754: GOAWAY(OK, last id seen), then the socket
      // closes once the open streams are done.
      conn.end()
      holdHeld.forEach(function (h) {
        var b = c.pattern(2000 + h.i, 256 * 1024)
        h.res.writeHead(200, dataHeaders(b))
        pacedSend(h.req, h.res, h.path, b, 5)
      })
    }
  } else {
    res.writeHead(404, { 'content-type': 'text/plain' })
    res.end('no route ' + route)
  }
}

// Writes 16 KiB every `ms` ms (stopping if the stream is reset): a stream
// that stays active for a while whatever the flow control (SPDY/2 has none).
function pacedSend (req, res, path, body, ms) {
  var stream = req.spdyStream
  watchStream(stream, path, body)
  var offset = 0
  function step () {
    if (stream._spdyState.aborted) return
    if (offset >= body.length) {
      stream.end()
      return
    }
    stream.write(body.slice(offset, offset + 16384))
    offset += 16384
    setTimeout(step, ms)
  }
  step()
}

var server = spdy.createServer({
  spdy: { plain: true, ssl: false, connection: { autoSpdy31: true } }
}, handler)

server.on('connection', function (socket) {
  socket.on('close', function () {
    c.emit({
      event: 'closed',
      case: testCase,
      expected_version: c.versionString(version),
      frames: frames,
      rst: rsts,
      goaway: goaways,
      errors: errors
    })
    server.close()
    c.exitSoon(0)
  })
})

server.on('error', function (err) {
  c.emit({ event: 'server_error', message: String(err.message) })
  c.exitSoon(2)
})

server.listen(0, '127.0.0.1', function () {
  c.emit({ event: 'listening', port: server.address().port })
})
