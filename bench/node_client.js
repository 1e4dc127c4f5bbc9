'use strict'
// Benchmark client on spdy-transport (node-spdy's protocol layer, the API
// that works for every version; NODE-SPDY-NOTES.md). Same workloads and
// output as spdy/examples/loadgen.rs.
// Usage: node bench/node_client.js HOST:PORT VERSION big|parallel|small
var net = require('net')
var path = require('path')
var spdyDir = path.join(__dirname, '..', 'interop', 'node_modules', 'spdy')
var transport = require(require.resolve('spdy-transport', { paths: [spdyDir] }))

var hostport = process.argv[2].split(':')
var version = { '2': 2, '3': 3, '3.1': 3.1 }[process.argv[3]]
var workload = process.argv[4]

var socket = net.connect({ host: hostport[0], port: parseInt(hostport[1], 10) })
socket.setNoDelay(true)
var conn = transport.connection.create(socket, {
  protocol: 'spdy', isServer: false, windowSize: 4 << 20
})
conn.start(version)

function get (n, cb) {
  conn.request({
    method: 'GET', path: '/bytes/' + n, host: process.argv[2], headers: {}
  }, function (err, stream) {
    if (err) throw err
    var got = 0
    stream.on('data', function (d) { got += d.length })
    stream.on('end', function () {
      if (got !== n) throw new Error('short body: ' + got + ' of ' + n)
      cb(got)
    })
    stream.on('error', function (e) { throw e })
    stream.end()
  })
}

function done (bytes, requests, start) {
  var secs = Number(process.hrtime.bigint() - start) / 1e9
  console.log(JSON.stringify({ bytes: bytes, requests: requests, secs: secs }))
  process.exit(0)
}

setTimeout(function () { console.error('timed out'); process.exit(1) }, 120000).unref()

var start = process.hrtime.bigint()
if (workload === 'big') {
  get(256 << 20, function (n) { done(n, 1, start) })
} else if (workload === 'parallel') {
  var left = 100; var total = 0
  for (var i = 0; i < 100; i++) {
    get(1 << 20, function (n) { total += n; if (--left === 0) done(total, 100, start) })
  }
} else if (workload === 'small') {
  var issued = 0; var finished = 0; var sum = 0
  var next = function () {
    if (issued >= 10000) return
    issued++
    get(100, function (n) {
      sum += n; finished++
      if (finished === 10000) done(sum, 10000, start); else next()
    })
  }
  for (var j = 0; j < 100; j++) next()
} else {
  console.error('unknown workload ' + workload); process.exit(2)
}
