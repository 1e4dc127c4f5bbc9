'use strict'

// usage: node interop/decode.js <2|3|3.1>  < {"hex":"<byte stream>"}
//
// Feeds one contiguous byte stream of SPDY frames (all header blocks sharing
// one zlib context, in order) to spdy-transport's own parser
// (node_modules/spdy-transport/lib/spdy-transport/protocol/spdy/parser.js),
// set up as a connection sets it up (common.js: version fixed up front as
// `connection.start(version)` does, inflate with that version's dictionary),
// and prints
//
//   {"frames":[{...normalized...}, ...]}                      exit 0
//   {"error":"<message>","frames":[...frames before...]}      exit 1
//
// plus a "warnings" array (only when non-empty) naming every place where the
// bytes carried something spdy-transport ignores or misreads.
//
// How the normalized fields are obtained
// --------------------------------------
// The parser does all the work: frame boundaries, zlib inflation, field
// reading. It emits HTTP/2-shaped objects, so we map them back; where that
// mapping is lossy we use data the parser itself read, tapped at two points:
//   (a) Parser#onFrameBody(header, body, cb) (parser.js:114): `header` is the
//       parser's own reading of the 8-byte frame header (control bit, type,
//       flags, length); we also keep a copy of `body`;
//   (b) parser.decompress.write (utils.js LockStream): the inflated header
//       block handed to parseKVs (parser.js:293-368).
// Conversions, per frame type:
//   * SYN_STREAM, SYN_REPLY and HEADERS are ALL emitted as type 'HEADERS'
//     (parser.js:227, :252, :278); the wire type comes from (a) header.type.
//   * Push SYN_STREAM (associated id != 0) is emitted as two objects,
//     PUSH_PROMISE {id: associated, promisedId: stream id, headers without
//     :status} + HEADERS {id, fin, priority, headers: {':status'}}
//     (parser.js:244-261); we merge them back.
//   * priority: the parser reads byte>>5 (3 bits, for v2 too) and emits an
//     HTTP/2 weight = priorityToWeight(p) = 5p+1 (parser.js:210, :218); we
//     invert that exactly. For v2 the wire field is 2 bits, so we report
//     p >> 1 (the parser's low bit is v2's first "unused" bit).
//   * unidirectional: non-push SYN_STREAM -> !writable (parser.js:213, :231);
//     for push SYN_STREAM the parser drops the flag (writable: true,
//     parser.js:256), so it is taken from (a) header.flags & 0x02.
//   * HEADERS fin: the parser always emits fin: false (parser.js:285); the
//     wire FIN bit is taken from (a) header.flags & 0x01 (+ warning).
//   * headers: the parser renames (v2 url->:path, method->:method, ...,
//     :host->:authority), drops :version, cuts the reason phrase off :status,
//     splits values on NUL and re-joins with ", " / "; " or drops duplicates
//     (parser.js:327-364, base/utils.js addHeaderLine). That cannot be
//     inverted, so the wire [name, value] list is read from the inflated
//     block (b), and it is CHECKED: applying the parser's exact transform to
//     it must give deep-equal to the headers object the parser emitted,
//     otherwise this is reported as an error.
//   * RST_STREAM: code name -> number via constants.error; a status outside
//     1..11 is emitted as code undefined, then the number is taken from the
//     body (+ warning).
//   * SETTINGS: the parser emits {settings: {name: value}} (parser.js:
//     390-432), losing ids order/duplicates/flags. We replay the parser's own
//     loop over the body (same byte order: v2 ID/flags word little-endian,
//     v3 big-endian; same skipping of PERSISTED entries WITHOUT consuming
//     their value, parser.js:421) and check that the replay gives exactly the
//     parser's settings object. Entries are listed in wire order; `persist`
//     is the entry's 0x01 flag; `persisted` is always false because the
//     parser skips such entries (+ warning: what follows is misaligned).
//     `clear` comes from (a) header.flags & 0x01 (the parser ignores it).
//   * PING: id = first 4 bytes of the emitted opaque; `ack` (which the parser
//     derives from id parity and isServer) is not part of the wire.
//   * GOAWAY: lastId; code name -> number via constants.goaway (unknown ->
//     from body, + warning). For v2 status is null (the v2 frame has no
//     status), although spdy-transport requires and reads 8 bytes for v2 too.
//   * WINDOW_UPDATE: id, delta as emitted (read as a SIGNED Int32,
//     parser.js:468; a set reserved bit gives a negative delta).
//   * DATA: id, fin, data as emitted.
// Omitted frames (listed in "warnings"): NOOP (type 5, emitted as
// {type:'NOOP'}), X_FORWARDED_FOR (0xf000, spdy-transport's private
// extension), and any other control type (emitted as {type:'unknown: N'},
// e.g. v3 CREDENTIAL = 10).
//
// End of input inside a frame is reported as an error (the parser itself
// would just wait for more bytes; for DATA it would even emit the partial
// payload as a non-FIN DATA frame, parser.js:61-77).

var assert = require('assert')
var common = require('./common')

var constants = common.constants
var utils = common.baseUtils

var SETTING_NAMES = {
  // parser.js:397-406
  1: 'upload_bandwidth',
  2: 'download_bandwidth',
  3: 'round_trip_time',
  4: 'max_concurrent_streams',
  5: 'current_cwnd',
  6: 'download_retrans_rate',
  7: 'initial_window_size',
  8: 'client_certificate_vector_size'
}

// Read the inflated Name/Value block: v2 16-bit count/lengths, v3 32-bit
// (same as parser.js:306-325, strings decoded as UTF-8 like Buffer#toString).
function readNV (version, block) {
  var size = version === 2 ? 2 : 4
  var off = 0
  function num () {
    if (off + size > block.length) throw new Error('NV block truncated')
    var n = size === 2 ? block.readUInt16BE(off) : block.readUInt32BE(off)
    off += size
    return n
  }
  function str () {
    var len = num()
    if (off + len > block.length) throw new Error('NV block truncated')
    var s = block.slice(off, off + len).toString()
    off += len
    return s
  }
  var count = num()
  var pairs = []
  for (var i = 0; i < count; i++) {
    var k = str()
    var v = str()
    pairs.push([k, v])
  }
  return { pairs: pairs, trailing: block.length - off }
}

// Exactly the transform of parser.js:327-364, applied to wire pairs.
function transportHeaderView (version, pairs) {
  var headers = {}
  pairs.forEach(function (pair) {
    var key = pair[0]
    var value = pair[1]
    if (version < 3) {
      var isInternal = /^(method|version|url|host|scheme|status)$/.test(key)
      if (key === 'url') key = 'path'
      if (isInternal) key = ':' + key
    }
    if (key === ':status') value = value.split(/ /g, 2)[0]
    if (key === ':host') key = ':authority'
    if (key === ':version') return
    value = value.split(/\0/g)
    for (var j = 0; j < value.length; j++) utils.addHeaderLine(key, value[j], headers)
  })
  return headers
}

function decode (versionArg, hex) {
  var version = common.parseVersion(versionArg)
  var wireVersion = version === 2 ? 2 : 3
  var warnings = []
  var frames = []

  if (typeof hex !== 'string' || !/^([0-9a-fA-F]{2})*$/.test(hex)) {
    return Promise.resolve({ error: 'input "hex" is not an even-length hex string', frames: frames })
  }
  var input = Buffer.from(hex, 'hex')

  var parser = common.makeParser(version)

  // Tap (b): inflated header blocks.
  var blocks = []
  var lock = parser.decompress
  var origWrite = lock.write
  lock.write = function (chunks, callback) {
    return origWrite.call(lock, chunks, function (err, out) {
      if (!err) blocks.push(Buffer.concat(out || []))
      callback(err, out)
    })
  }

  // Tap (a): frame header + body, and the object(s) emitted for that frame.
  var origOnFrameBody = parser.onFrameBody
  var index = 0
  var failure = null
  parser.onFrameBody = function (header, body, callback) {
    var n = index++
    var raw = Buffer.from(body.clone(body.size).take(body.size))
    blocks = []
    return origOnFrameBody.call(this, header, body, function (err, emitted) {
      if (!err && failure === null) {
        try {
          var f = normalize(version, wireVersion, n, header, raw, emitted, blocks, warnings)
          if (f) frames.push(f)
        } catch (e) {
          failure = 'frame #' + n + ': ' + e.message
          err = new Error(failure)
        }
      }
      callback(err, emitted)
    })
  }

  return new Promise(function (resolve) {
    var done = false
    function finish (errMsg) {
      if (done) return
      done = true
      var res = {}
      if (errMsg) res.error = errMsg
      res.frames = frames
      if (warnings.length) res.warnings = warnings
      resolve(res)
    }
    parser.on('data', function () {}) // keep the readable side flowing
    parser.on('error', function (err) {
      finish(failure || (err && err.message) || String(err))
    })
    parser.on('finish', function () {
      setImmediate(function () {
        if (parser.state !== 'frame-head' || parser.buffer.size !== 0) {
          var have = parser.state === 'frame-head'
            ? parser.buffer.size + ' of 8 frame header bytes'
            : 'frame body incomplete, ' + parser.waiting + ' more bytes expected'
          return finish('input ends inside a frame (' + have + ')')
        }
        finish(null)
      })
    })
    parser.end(input)
  })
}

function normalize (version, wireVersion, n, header, raw, emitted, blocks, warnings) {
  function warn (msg) { warnings.push('frame #' + n + ': ' + msg) }

  if (!header.control) {
    // DATA (parser.js:116-138)
    if (header.flags & ~0x01) warn('DATA flags 0x' + header.flags.toString(16) + ': only FIN is looked at')
    assert.strictEqual(emitted.type, 'DATA')
    return { type: 'DATA', stream_id: emitted.id, fin: emitted.fin, data_hex: emitted.data.toString('hex') }
  }

  if (header.version !== wireVersion) {
    warn('control frame version ' + header.version + ' accepted as is: the parser only looks at the version of the first control frame, and not at all once it was started with a version (parser.js:98-104)')
  }

  switch (header.type) {
    case 0x01: return synStream()
    case 0x02: return synReply()
    case 0x03: return rst()
    case 0x04: return settings()
    case 0x05: warn('NOOP omitted'); return null
    case 0x06: return ping()
    case 0x07: return goaway()
    case 0x08: return headersFrame()
    case 0x09: return windowUpdate()
    case 0xf000: warn('X_FORWARDED_FOR (spdy-transport extension) omitted'); return null
    default: warn('unknown control frame type ' + header.type + ' omitted (parser emits {type:"' + emitted.type + '"})'); return null
  }

  // Wire headers from the inflated block, checked against the parser's view.
  function wireHeaders (parserHeaders) {
    if (blocks.length !== 1) throw new Error('expected one inflated header block, saw ' + blocks.length)
    var nv = readNV(version, blocks[0])
    if (nv.trailing) warn(nv.trailing + ' bytes after the last name/value pair are ignored')
    nv.pairs.forEach(function (p) {
      if (p[0] !== p[0].toLowerCase()) warn('header name "' + p[0] + '" is not lower case; spdy-transport lower-cases it')
    })
    var view = transportHeaderView(version, nv.pairs)
    try {
      assert.deepStrictEqual(parserHeaders, view)
    } catch (e) {
      throw new Error('header block read here disagrees with spdy-transport\'s headers: ' +
        JSON.stringify(parserHeaders) + ' vs ' + JSON.stringify(view))
    }
    return common.sortHeaders(nv.pairs)
  }

  function priorityOf (h) {
    var p3 = common.weightToWirePriority3(h.priority.weight)
    return version >= 3 ? p3 : p3 >> 1
  }

  function synStream () {
    if (header.flags & ~0x03) warn('SYN_STREAM flags 0x' + header.flags.toString(16) + ': unknown bits ignored')
    if (Array.isArray(emitted)) {
      // push: [PUSH_PROMISE, HEADERS] (parser.js:244-261)
      var pp = emitted[0]
      var hd = emitted[1]
      assert.strictEqual(pp.type, 'PUSH_PROMISE')
      assert.strictEqual(hd.type, 'HEADERS')
      var merged = Object.assign({}, pp.headers, { ':status': hd.headers[':status'] })
      var uni = (header.flags & 0x02) !== 0
      if (!uni) warn('push SYN_STREAM without FLAG_UNIDIRECTIONAL (spdy-transport never sets it on pushes and its parser ignores it there, parser.js:256)')
      return {
        type: 'SYN_STREAM',
        stream_id: pp.promisedId,
        associated_id: pp.id,
        priority: priorityOf(hd),
        fin: hd.fin,
        unidirectional: uni,
        headers: wireHeaders(merged)
      }
    }
    assert.strictEqual(emitted.type, 'HEADERS')
    return {
      type: 'SYN_STREAM',
      stream_id: emitted.id,
      associated_id: 0, // the parser treats associated != 0 as a push
      priority: priorityOf(emitted),
      fin: emitted.fin,
      unidirectional: !emitted.writable,
      headers: wireHeaders(emitted.headers)
    }
  }

  function synReply () {
    assert.strictEqual(emitted.type, 'HEADERS')
    if (header.flags & 0x02) warn('SYN_REPLY with flag 0x02: the parser reads it as UNIDIRECTIONAL (writable=false)')
    if (header.flags & ~0x03) warn('SYN_REPLY flags 0x' + header.flags.toString(16) + ': unknown bits ignored')
    return { type: 'SYN_REPLY', stream_id: emitted.id, fin: emitted.fin, headers: wireHeaders(emitted.headers) }
  }

  function headersFrame () {
    assert.strictEqual(emitted.type, 'HEADERS')
    var fin = (header.flags & 0x01) !== 0
    if (fin) warn('HEADERS with FIN: spdy-transport ignores FIN on HEADERS (emits fin=false, parser.js:285)')
    if (header.flags & ~0x01) warn('HEADERS flags 0x' + header.flags.toString(16) + ': unknown bits ignored')
    return { type: 'HEADERS', stream_id: emitted.id, fin: fin, headers: wireHeaders(emitted.headers) }
  }

  function rst () {
    assert.strictEqual(emitted.type, 'RST')
    var status
    if (emitted.code !== undefined) {
      status = constants.error[emitted.code]
    } else {
      status = raw.readUInt32BE(4)
      warn('RST_STREAM status ' + status + ' unknown to spdy-transport (emitted as code undefined)')
    }
    if (emitted.extra) warn('RST_STREAM has ' + emitted.extra.length + ' extra bytes (accepted as frame.extra)')
    return { type: 'RST_STREAM', stream_id: emitted.id, status: status }
  }

  function settings () {
    assert.strictEqual(emitted.type, 'SETTINGS')
    var clear = (header.flags & 0x01) !== 0
    if (clear) warn('SETTINGS FLAG_CLEAR_SETTINGS is ignored by spdy-transport')
    // Replay of parser.js:396-426.
    var count = raw.readUInt32BE(0)
    var off = 4
    var entries = []
    var replay = {}
    for (var i = 0; i < count; i++) {
      var word = version === 2 ? raw.readUInt32LE(off) : raw.readUInt32BE(off)
      off += 4
      var flags = (word >> 24) & 0xff
      var id = word & 0xffffff
      if (flags & 0x2) {
        warn('SETTINGS entry #' + i + ' (id ' + id + ') has FLAG_SETTINGS_PERSISTED: spdy-transport skips it without consuming its value, so later entries are misread (parser.js:421)')
        continue
      }
      var value = raw.readUInt32BE(off)
      off += 4
      if (!SETTING_NAMES[id]) warn('SETTINGS id ' + id + ' unknown to spdy-transport (stored as settings["undefined"])')
      if (Object.prototype.hasOwnProperty.call(replay, SETTING_NAMES[id])) {
        warn('SETTINGS id ' + id + ' repeated: spdy-transport keeps the LAST value')
      }
      replay[SETTING_NAMES[id]] = value
      if (flags & ~0x03) warn('SETTINGS entry #' + i + ' flags 0x' + flags.toString(16) + ': unknown bits ignored')
      entries.push({ id: id, value: value, persist: (flags & 0x1) !== 0, persisted: false })
    }
    if (off !== raw.length) warn('SETTINGS: ' + (raw.length - off) + ' bytes after what spdy-transport read are ignored')
    try {
      assert.deepStrictEqual(emitted.settings, replay)
    } catch (e) {
      throw new Error('SETTINGS replay disagrees with spdy-transport: ' + JSON.stringify(emitted.settings) + ' vs ' + JSON.stringify(replay))
    }
    return { type: 'SETTINGS', clear: clear, entries: entries }
  }

  function ping () {
    assert.strictEqual(emitted.type, 'PING')
    if (emitted.opaque.length !== 4) warn('PING body is ' + emitted.opaque.length + ' bytes; only the first 4 are the id')
    return { type: 'PING', id: emitted.opaque.readUInt32BE(0) }
  }

  function goaway () {
    assert.strictEqual(emitted.type, 'GOAWAY')
    var status
    if (version === 2) {
      status = null // v2 GOAWAY has no status field (the parser still reads 8 bytes)
    } else if (emitted.code !== undefined) {
      status = constants.goaway[emitted.code]
    } else {
      status = raw.readUInt32BE(4)
      warn('GOAWAY status ' + status + ' unknown to spdy-transport (emitted as code undefined)')
    }
    if (raw.length > 8) warn('GOAWAY has ' + (raw.length - 8) + ' extra bytes, ignored')
    return { type: 'GOAWAY', last_good_stream_id: emitted.lastId, status: status }
  }

  function windowUpdate () {
    assert.strictEqual(emitted.type, 'WINDOW_UPDATE')
    if (version === 2) warn('WINDOW_UPDATE on SPDY/2: accepted by spdy-transport (v2 has no such frame)')
    if (raw.length > 8) warn('WINDOW_UPDATE has ' + (raw.length - 8) + ' extra bytes, ignored')
    return { type: 'WINDOW_UPDATE', stream_id: emitted.id, delta: emitted.delta }
  }
}

module.exports = { decode: decode, readNV: readNV, transportHeaderView: transportHeaderView }

if (require.main === module) {
  var versionArg = process.argv[2]
  try {
    if (process.argv.length !== 3) throw new Error('one argument expected')
    common.parseVersion(versionArg)
  } catch (e) {
    console.error('usage: node interop/decode.js <2|3|3.1>  < {"hex":"..."}  (' + e.message + ')')
    process.exit(2)
  }
  var chunks = []
  process.stdin.on('data', function (c) { chunks.push(c) })
  process.stdin.on('end', function () {
    var doc
    try {
      doc = JSON.parse(Buffer.concat(chunks).toString('utf8'))
    } catch (e) {
      process.stdout.write(JSON.stringify({ error: 'bad JSON on stdin: ' + e.message, frames: [] }) + '\n')
      process.exitCode = 1
      return
    }
    decode(versionArg, doc && doc.hex).then(function (res) {
      process.stdout.write(JSON.stringify(res) + '\n')
      if (res.error !== undefined) process.exitCode = 1
    })
  })
}
