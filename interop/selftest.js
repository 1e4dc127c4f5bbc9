'use strict'

// usage: node interop/selftest.js
//
// 1. Round trip: for SPDY 2, 3 and 3.1, with header compression on (encode.js
//    default) and off (node-spdy's default), runs `node encode.js <v>` and
//    feeds the concatenated frames to decode (in-process and via
//    `node decode.js <v>`); the normalized frames must be identical and
//    decode must report no error and no warning except the expected one
//    (spdy-transport's pushes lack FLAG_UNIDIRECTIONAL).
// 2. Wire checks on encode's bytes (zlib header/dictionary id/sync flush,
//    v2 SETTINGS layout, slot byte, GOAWAY length, ...).
// 3. Probes: every quirk claimed in README.md, checked against spdy-transport
//    itself (its framer for what it writes, its parser via decode for what it
//    reads).
// Prints one line per check and ends with "N passed, N failed"; exit 1 on any
// failure.

var assert = require('assert')
var path = require('path')
var zlib = require('zlib')
var childProcess = require('child_process')

var common = require('./common')
var encodeMod = require('./encode')
var decodeMod = require('./decode')

var decode = decodeMod.decode
var runFramer = encodeMod.runFramer

var passed = 0
var failed = 0
var checks = []

function check (name, fn) { checks.push({ name: name, fn: fn }) }

function cli (script, args, input) {
  return childProcess.execFileSync(process.execPath, [path.join(__dirname, script)].concat(args), {
    input: input,
    maxBuffer: 64 * 1024 * 1024
  }).toString()
}

var ALLOWED_WARNING = /push SYN_STREAM without FLAG_UNIDIRECTIONAL/

// --- frame builders for probes ------------------------------------------------

function u32 () {
  return Buffer.concat(Array.prototype.map.call(arguments, function (x) {
    var b = Buffer.alloc(4)
    b.writeUInt32BE(x >>> 0)
    return b
  }))
}

function ctrl (wireVersion, type, flags, body) {
  var h = Buffer.alloc(8)
  h.writeUInt16BE(0x8000 | wireVersion, 0)
  h.writeUInt16BE(type, 2)
  h.writeUInt32BE(body.length, 4)
  h[4] = flags
  return Buffer.concat([h, body])
}

// One NV block as its own zlib stream with the version's dictionary, ended by
// a SYNC_FLUSH (fine for a probe stream holding a single header frame).
function nv (version, pairs, trailer) {
  var n = version === 2 ? 2 : 4
  var parts = []
  function w (x) {
    var b = Buffer.alloc(n)
    if (n === 2) b.writeUInt16BE(x); else b.writeUInt32BE(x)
    parts.push(b)
  }
  w(pairs.length)
  pairs.forEach(function (p) {
    w(Buffer.byteLength(p[0])); parts.push(Buffer.from(p[0]))
    w(Buffer.byteLength(p[1])); parts.push(Buffer.from(p[1]))
  })
  if (trailer) parts.push(trailer)
  return zlib.deflateSync(Buffer.concat(parts), {
    dictionary: common.spdyProto.dictionary[version],
    finishFlush: zlib.constants.Z_SYNC_FLUSH
  })
}

function dec (version, buf) { return decode(version, buf.toString('hex')) }

function frameBytes (version, call) {
  return runFramer(common.parseVersion(version), { headerCompression: true }, [call])
    .then(function (bufs) { return bufs[0] })
}

// --- 1. round trips -----------------------------------------------------------

;['2', '3', '3.1'].forEach(function (v) {
  ;['on', 'off'].forEach(function (hc) {
    check('round trip SPDY/' + v + ' header-compression=' + hc, function () {
      var doc = JSON.parse(cli('encode.js', [v, '--header-compression=' + hc]))
      assert.strictEqual(doc.version, v)
      var hex = doc.frames.map(function (f) { return f.hex }).join('')
      var headerFrames = doc.frames.filter(function (f) { return f.frame.headers }).length
      assert.ok(headerFrames >= 6, 'at least 6 header-carrying frames (' + headerFrames + ')')
      var expected = doc.frames.map(function (f) { return f.frame })
      var viaCli = JSON.parse(cli('decode.js', [v], JSON.stringify({ hex: hex })))
      return decode(v, hex).then(function (res) {
        assert.strictEqual(res.error, undefined, 'decode error: ' + res.error)
        assert.deepStrictEqual(res.frames, expected)
        ;(res.warnings || []).forEach(function (w) { assert.ok(ALLOWED_WARNING.test(w), 'unexpected warning: ' + w) })
        assert.deepStrictEqual(viaCli, res)
        return doc.frames.length + ' frames, ' + headerFrames + ' with headers'
      })
    })
  })
})

// --- 2. wire checks on encode output -----------------------------------------

function headerBlockOffset (version, type) {
  if (type === 'SYN_STREAM') return 10
  return version === '2' ? 6 : 4 // SYN_REPLY and HEADERS: v2 has 2 unused bytes
}

;['2', '3', '3.1'].forEach(function (v) {
  ;['on', 'off'].forEach(function (hc) {
    check('zlib framing SPDY/' + v + ' header-compression=' + hc, function () {
      return encodeMod.encode(v, { headerCompression: hc === 'on' }).then(function (doc) {
        var dictId = v === '2' ? 'dfa251b2' : 'e3c6a7c2'
        var first = true
        doc.frames.forEach(function (f) {
          if (!f.frame.headers) return
          var bytes = Buffer.from(f.hex, 'hex')
          var block = bytes.slice(8 + headerBlockOffset(v, f.frame.type))
          assert.strictEqual(block.slice(-4).toString('hex'), '0000ffff', 'every block ends with a SYNC_FLUSH')
          if (first) {
            // CMF 0x38: deflate, CINFO 3 = 2^11 window (zlib-pool.js:14)
            assert.strictEqual(block[0], 0x38)
            assert.ok(block[1] & 0x20, 'FDICT set')
            assert.strictEqual((block[1] >> 6), hc === 'on' ? 2 : 0, 'FLEVEL')
            assert.strictEqual(((block[0] << 8) | block[1]) % 31, 0)
            assert.strictEqual(block.slice(2, 6).toString('hex'), dictId)
            first = false
          } else {
            assert.notStrictEqual(block.slice(0, 1).toString('hex') + block.slice(2, 6).toString('hex'), '38' + dictId)
          }
        })
        return 'first block 38' + (hc === 'on' ? 'ac' : '30') + dictId + ', all end 0000ffff'
      })
    })
  })
})

check('v2 SETTINGS entry = [id 24-bit LE][flags] (0x01 PERSIST on every entry), value BE', function () {
  return encodeMod.encode('2').then(function (doc) {
    assert.strictEqual(doc.frames[0].hex, '80020004' + '0000000c' + '00000001' + '07000001' + '00100000')
    return doc.frames[0].hex
  })
})

check('v3 SETTINGS entry = [flags][id 24-bit BE], value BE', function () {
  return encodeMod.encode('3').then(function (doc) {
    assert.strictEqual(doc.frames[0].hex, '80030004' + '0000000c' + '00000001' + '01000007' + '00100000')
    return doc.frames[0].hex
  })
})

check('SYN_STREAM: priority byte = p3<<5 for v2 too, slot/unused byte 0', function () {
  return Promise.all(['2', '3'].map(function (v) {
    return encodeMod.encode(v).then(function (doc) {
      return doc.frames.filter(function (f) { return f.frame.type === 'SYN_STREAM' }).map(function (f) {
        var b = Buffer.from(f.hex, 'hex')
        assert.strictEqual(b[17], 0, 'slot byte')
        assert.strictEqual(b[16] & 0x1f, 0)
        return 'v' + v + ':' + b[16].toString(16)
      }).join(' ')
    })
  })).then(function (r) {
    // weights 16, 1, 256, 11, 21 -> p3 3, 0, 7, 2, 4
    assert.strictEqual(r[0], 'v2:60 v2:0 v2:e0 v2:40 v2:80')
    assert.strictEqual(r[1], 'v3:60 v3:0 v3:e0 v3:40 v3:80')
    return r.join(' | ')
  })
})

check('v2 GOAWAY is written with 8 bytes (last-good-id + status)', function () {
  return frameBytes('2', function (f, cb) { f.goawayFrame({ lastId: 7, code: 'OK' }, cb) }).then(function (b) {
    assert.strictEqual(b.toString('hex'), '80020007000000080000000700000000')
    return b.toString('hex')
  })
})

// --- 3. probes: framer ------------------------------------------------------------

check('framer: GOAWAY code FLOW_CONTROL_ERROR (sent by connection.js:353) is written as status 0', function () {
  return frameBytes('3', function (f, cb) { f.goawayFrame({ lastId: 1, code: 'FLOW_CONTROL_ERROR' }, cb) }).then(function (b) {
    assert.strictEqual(b.slice(12).toString('hex'), '00000000')
    return b.toString('hex')
  })
})

check('framer: RST_STREAM with a code it does not know is written as status 0', function () {
  return frameBytes('3', function (f, cb) { f.rstFrame({ id: 1, code: 'NO_SUCH_CODE' }, cb) }).then(function (b) {
    assert.strictEqual(b.toString('hex'), '80030003000000080000000100000000')
    return b.toString('hex')
  })
})

check('framer: SETTINGS values are masked to 31 bits', function () {
  return frameBytes('3', function (f, cb) { f.settingsFrame({ round_trip_time: 0x80000005 }, cb) }).then(function (b) {
    assert.strictEqual(b.slice(16).toString('hex'), '00000005')
    return b.toString('hex')
  })
})

check('framer: SYN_REPLY status without a known reason gets "undefined" as reason', function () {
  return runFramer(3, { headerCompression: false }, [function (f, cb) { f.responseFrame({ id: 1, status: 299, headers: {} }, cb) }])
    .then(function (bufs) { return dec('3', bufs[0]) })
    .then(function (r) {
      assert.deepStrictEqual(r.frames[0].headers, [[':status', '299 undefined'], [':version', 'HTTP/1.1']])
      return JSON.stringify(r.frames[0].headers)
    })
})

check('framer: WINDOW_UPDATE is produced on SPDY/2 too (version field 2, type 9)', function () {
  return frameBytes('2', function (f, cb) { f.windowUpdateFrame({ id: 1, delta: 5 }, cb) }).then(function (b) {
    assert.strictEqual(b.toString('hex'), '80020009000000080000000100000005')
    return b.toString('hex')
  })
})

check('framer: SPDY/3.1 frames carry version 3', function () {
  return frameBytes('3.1', function (f, cb) { f.pingFrame({ opaque: u32(1) }, cb) }).then(function (b) {
    assert.strictEqual(b.toString('hex'), '800300060000000400000001')
    return b.toString('hex')
  })
})

// --- 3. probes: parser (via decode) ------------------------------------------------

function probe (name, version, bytes, expect) {
  check('parser: ' + name, function () {
    return dec(version, bytes).then(function (r) {
      expect(r)
      return JSON.stringify(r)
    })
  })
}

probe('v2 SETTINGS ID read little-endian ([04 00 00 | 00] -> id 4)', '2',
  ctrl(2, 4, 0, Buffer.concat([u32(1), Buffer.from([4, 0, 0, 0]), u32(100)])), function (r) {
    assert.deepStrictEqual(r.frames[0].entries, [{ id: 4, value: 100, persist: false, persisted: false }])
    assert.strictEqual(r.warnings, undefined)
  })

probe('v2 SETTINGS written big-endian ([00 00 00 04]) is misread as id 0, flags 4', '2',
  ctrl(2, 4, 0, Buffer.concat([u32(1), Buffer.from([0, 0, 0, 4]), u32(100)])), function (r) {
    assert.deepStrictEqual(r.frames[0].entries, [{ id: 0, value: 100, persist: false, persisted: false }])
  })

probe('SETTINGS PERSISTED entry is skipped without its value: next entry misaligned', '3',
  ctrl(3, 4, 0, Buffer.concat([u32(2), u32(0x02000004), u32(100), u32(0x00000007), u32(65536)])), function (r) {
    assert.deepStrictEqual(r.frames[0].entries, [{ id: 100, value: 7, persist: false, persisted: false }])
  })

probe('SETTINGS CLEAR flag ignored, unknown id accepted', '3',
  ctrl(3, 4, 1, Buffer.concat([u32(1), u32(0x01000009), u32(5)])), function (r) {
    assert.deepStrictEqual(r.frames[0], { type: 'SETTINGS', clear: true, entries: [{ id: 9, value: 5, persist: true, persisted: false }] })
    assert.ok(r.warnings.some(function (w) { return /CLEAR_SETTINGS is ignored/.test(w) }))
  })

probe('v2 GOAWAY with the spec\'s 4-byte body is rejected ("GOAWAY OOB")', '2',
  ctrl(2, 7, 0, u32(5)), function (r) { assert.strictEqual(r.error, 'GOAWAY OOB') })

probe('v2 GOAWAY with 8 bytes is accepted', '2',
  ctrl(2, 7, 0, u32(5, 1)), function (r) {
    assert.deepStrictEqual(r.frames, [{ type: 'GOAWAY', last_good_stream_id: 5, status: null }])
  })

probe('v2 priority: byte>>5 read as 3 bits (0x40 -> p3 2 -> wire v2 priority 1)', '2',
  ctrl(2, 1, 0, Buffer.concat([u32(1), u32(0), Buffer.from([0x40, 0]), nv(2, [['method', 'GET'], ['url', '/']])])), function (r) {
    assert.strictEqual(r.frames[0].priority, 1)
  })

probe('HEADERS FIN flag ignored by the parser', '3',
  ctrl(3, 8, 1, Buffer.concat([u32(1), nv(3, [['a', 'b']])])), function (r) {
    assert.strictEqual(r.frames[0].fin, true)
    assert.ok(r.warnings.some(function (w) { return /ignores FIN on HEADERS/.test(w) }))
  })

probe('header frame without any header block is rejected ("KV OOB")', '3',
  ctrl(3, 2, 0, u32(1)), function (r) { assert.strictEqual(r.error, 'KV OOB') })

probe('header block with zero pairs is fine', '3',
  ctrl(3, 2, 0, Buffer.concat([u32(1), nv(3, [])])), function (r) {
    assert.deepStrictEqual(r.frames, [{ type: 'SYN_REPLY', stream_id: 1, fin: false, headers: [] }])
  })

probe('SYN_STREAM without :path is rejected', '3',
  ctrl(3, 1, 0, Buffer.concat([u32(1), u32(0), Buffer.from([0, 0]), nv(3, [[':method', 'GET']])])), function (r) {
    assert.strictEqual(r.error, 'Missing `:method` and/or `:path` header')
  })

probe('push SYN_STREAM without :status is rejected', '3',
  ctrl(3, 1, 2, Buffer.concat([u32(2), u32(1), Buffer.from([0, 0]), nv(3, [[':method', 'GET'], [':path', '/x']])])), function (r) {
    assert.strictEqual(r.error, 'Missing `:status` header')
  })

probe('upper-case header names, NUL-separated values, duplicates-dropping headers accepted', '3',
  ctrl(3, 1, 2, Buffer.concat([u32(1), u32(0), Buffer.from([0x20, 0]),
    nv(3, [[':method', 'GET'], [':path', '/'], ['X-Up', 'a\u0000b'], ['content-length', '1\u00002']])])), function (r) {
    assert.strictEqual(r.error, undefined)
    assert.strictEqual(r.frames[0].unidirectional, true)
  })

probe('zero-length name/value, repeated names, consecutive NULs, trailing NV bytes accepted', '3',
  ctrl(3, 2, 0, Buffer.concat([u32(1), nv(3, [['', ''], ['a', 'x\u0000\u0000y'], ['a', 'z']], Buffer.from('junk'))])), function (r) {
    assert.strictEqual(r.error, undefined, r.error)
    assert.deepStrictEqual(r.frames[0].headers, [['', ''], ['a', 'x\u0000\u0000y'], ['a', 'z']])
    assert.ok(r.warnings.some(function (w) { return /4 bytes after the last name\/value pair/.test(w) }))
  })

probe('PING longer than 4 bytes accepted (id = first 4 bytes)', '3',
  ctrl(3, 6, 0, u32(7, 8)), function (r) { assert.deepStrictEqual(r.frames, [{ type: 'PING', id: 7 }]) })

probe('RST_STREAM status 0 accepted (code undefined)', '3',
  ctrl(3, 3, 0, u32(1, 0)), function (r) {
    assert.deepStrictEqual(r.frames, [{ type: 'RST_STREAM', stream_id: 1, status: 0 }])
  })

probe('RST_STREAM on stream 0 rejected', '3',
  ctrl(3, 3, 0, u32(0, 1)), function (r) { assert.strictEqual(r.error, 'Invalid stream id for RST') })

probe('WINDOW_UPDATE delta read as signed Int32 (reserved bit not masked)', '3',
  ctrl(3, 9, 0, u32(1, 0x80000001)), function (r) { assert.strictEqual(r.frames[0].delta, -2147483647) })

probe('WINDOW_UPDATE accepted on SPDY/2', '2',
  ctrl(2, 9, 0, u32(1, 5)), function (r) { assert.deepStrictEqual(r.frames[0], { type: 'WINDOW_UPDATE', stream_id: 1, delta: 5 }) })

probe('DATA with FLAG_COMPRESSED (0x02) rejected', '2',
  Buffer.from('000000010200000161', 'hex'), function (r) { assert.strictEqual(r.error, 'DATA compression not supported') })

probe('DATA on stream 0 rejected', '3',
  Buffer.from('0000000000000000', 'hex'), function (r) { assert.strictEqual(r.error, 'Invalid stream id for DATA') })

probe('control frame version field not checked after start (v2 PING in a v3 session)', '3',
  ctrl(2, 6, 0, u32(3)), function (r) { assert.deepStrictEqual(r.frames, [{ type: 'PING', id: 3 }]) })

probe('NOOP and CREDENTIAL (type 10) are ignored', '3',
  Buffer.concat([ctrl(3, 5, 0, Buffer.alloc(0)), ctrl(3, 10, 0, Buffer.alloc(4)), ctrl(3, 6, 0, u32(9))]), function (r) {
    assert.deepStrictEqual(r.frames, [{ type: 'PING', id: 9 }])
  })

probe('truncated input is reported', '3',
  ctrl(3, 6, 0, u32(3)).slice(0, 10), function (r) { assert.ok(/input ends inside a frame/.test(r.error)) })

// A different compressor than spdy-transport's (windowBits 15, level 9, one
// stream shared by three header frames, SYNC_FLUSH after each block), as a
// Rust encoder might produce: the parser must inflate all three.
check('parser: header blocks from a foreign zlib stream (windowBits 15, level 9) sharing one context', function () {
  var version = 3
  var deflate = zlib.createDeflate({ dictionary: common.spdyProto.dictionary[3], windowBits: 15, level: 9 })
  var out = []
  deflate.on('data', function (c) { out.push(c) })
  function block (pairs) {
    var parts = [u32(pairs.length)]
    pairs.forEach(function (p) {
      parts.push(u32(Buffer.byteLength(p[0])), Buffer.from(p[0]), u32(Buffer.byteLength(p[1])), Buffer.from(p[1]))
    })
    return new Promise(function (resolve) {
      deflate.write(Buffer.concat(parts))
      deflate.flush(zlib.constants.Z_SYNC_FLUSH, function () {
        var b = Buffer.concat(out)
        out = []
        resolve(b)
      })
    })
  }
  var req = [[':method', 'GET'], [':path', '/a'], [':version', 'HTTP/1.1'], [':host', 'x'], [':scheme', 'https']]
  var frames = []
  return block(req).then(function (b) {
    frames.push(ctrl(3, 1, 1, Buffer.concat([u32(1), u32(0), Buffer.from([0, 0]), b])))
    return block(req)
  }).then(function (b) {
    frames.push(ctrl(3, 1, 1, Buffer.concat([u32(3), u32(0), Buffer.from([0x20, 0]), b])))
    return block([[':status', '200 OK'], [':version', 'HTTP/1.1']])
  }).then(function (b) {
    frames.push(ctrl(3, 2, 0, Buffer.concat([u32(1), b])))
    return dec(version, Buffer.concat(frames))
  }).then(function (r) {
    assert.strictEqual(r.error, undefined, r.error)
    assert.deepStrictEqual(r.frames.map(function (f) { return f.type + ':' + f.stream_id + ':' + f.headers.length }),
      ['SYN_STREAM:1:5', 'SYN_STREAM:3:5', 'SYN_REPLY:1:2'])
    return r.frames.length + ' frames inflated'
  })
})

// --- run ------------------------------------------------------------------------

function runAll () {
  var i = 0
  function next () {
    if (i === checks.length) {
      console.log(passed + ' passed, ' + failed + ' failed')
      process.exitCode = failed ? 1 : 0
      return
    }
    var c = checks[i++]
    Promise.resolve().then(c.fn).then(function (info) {
      passed++
      console.log('ok   ' + c.name + (info ? '  [' + info + ']' : ''))
    }, function (err) {
      failed++
      console.log('FAIL ' + c.name + ': ' + (err && err.message ? err.message : err))
    }).then(next)
  }
  next()
}

runAll()
