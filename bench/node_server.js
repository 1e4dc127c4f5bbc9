'use strict'
// Benchmark server on node-spdy (plain TCP, every version): GET /bytes/N
// answers N bytes. Prints "listening on HOST:PORT".
// Usage: node bench/node_server.js [port]
var path = require('path')
var spdy = require(path.join(__dirname, '..', 'interop', 'node_modules', 'spdy'))

var BLOCK = Buffer.alloc(256 * 1024, 0x5a)

var server = spdy.createServer({
  spdy: { plain: true, ssl: false, connection: { autoSpdy31: true, windowSize: 4 << 20 } }
}, function (req, res) {
  var m = /^\/bytes\/(\d+)$/.exec(req.url)
  if (!m) { res.writeHead(404); res.end(); return }
  var left = parseInt(m[1], 10)
  res.writeHead(200, { 'content-length': String(left) })
  function pump () {
    while (left > 0) {
      var n = Math.min(left, BLOCK.length)
      left -= n
      if (!res.write(n === BLOCK.length ? BLOCK : BLOCK.slice(0, n))) {
        res.once('drain', pump)
        return
      }
    }
    res.end()
  }
  // Read the (empty) request body first: piping before the request ends
  // hangs now and then (NODE-SPDY-NOTES.md).
  req.resume()
  req.on('end', pump)
})
server.listen(parseInt(process.argv[2] || '0', 10), '127.0.0.1', function () {
  var a = server.address()
  console.log('listening on ' + a.address + ':' + a.port)
})
