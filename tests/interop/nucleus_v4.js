// Drive the official nucleus-analytics module (npm, 4.0.3) against a target and record its wire messages.
//
//   node nucleus_v4.js ENDPOINT APP_ID EVENTS OUT.json TIMEOUT_S
//
// ENDPOINT is the server's ws://host:port, no trailing slash (the module appends /app/{appId}/track). The
// module persists its queue with `conf`: run it with XDG_CONFIG_HOME set to a fresh directory. It reports
// every 2 s here (reportInterval 2; its default is 20 s: still longer than its 1 s wait after an open), tracks EVENTS events, a user id and an error,
// and waits until the server has reported every id it sent, then for three idle reports (heartbeat, empty
// batch, heartbeat). OUT.json gets every frame sent and received, with its time (ms since start) and the
// times the sockets opened. Exit 0 when done, 3 when TIMEOUT_S passed first.
"use strict"

const fs = require("fs")
const WebSocket = require("ws") // the very module nucleus-analytics uses (its optional dependency)

const [endpoint, appId, count, outPath, timeoutS] = process.argv.slice(2)
const start = Date.now()
const now = () => Date.now() - start
const record = { opened: [], frames: [] }

// Record what the module writes and reads, at the socket, before anything else sees it.
const send = WebSocket.prototype.send
WebSocket.prototype.send = function (data, ...rest) {
  record.frames.push({ t: now(), dir: "sent", data: String(data) })
  return send.call(this, data, ...rest)
}
const emit = WebSocket.prototype.emit
WebSocket.prototype.emit = function (name, ...args) {
  if (name === "open") record.opened.push(now())
  if (name === "message") record.frames.push({ t: now(), dir: "received", data: String(args[0]) })
  return emit.call(this, name, ...args)
}

const Nucleus = require("nucleus-analytics")

function finish(code) {
  fs.writeFileSync(outPath, JSON.stringify(record))
  process.exit(code)
}

function sentIds() {
  const ids = []
  for (const f of record.frames) {
    if (f.dir !== "sent") continue
    for (const e of JSON.parse(f.data).data) if (e.id !== undefined) ids.push(e.id)
  }
  return ids
}

function reportedIds() {
  const ids = new Set()
  for (const f of record.frames) {
    if (f.dir === "received") for (const id of JSON.parse(f.data).reportedIds || []) ids.add(id)
  }
  return ids
}

Nucleus.init(appId, { endpoint, reportInterval: 2, disableErrorReports: true })
Nucleus.setUserId("interop-user")
for (let i = 0; i < Number(count); i++) Nucleus.track("open_file", { n: i, path: `/tmp/file-${i}` })
const err = new Error("boom")
Nucleus.trackError("uncaughtException", err)
const expected = Number(count) + 3 // init, userid, the events, the error

let idleFrom = null
const timer = setInterval(() => {
  const sent = new Set(sentIds())
  const reported = reportedIds()
  const allAcked = sent.size >= expected && [...sent].every((id) => reported.has(id))
  if (allAcked && idleFrom === null) idleFrom = record.frames.length
  if (idleFrom !== null) {
    const idle = record.frames.slice(idleFrom).filter((f) => f.dir === "sent").length
    if (idle >= 3) {
      clearInterval(timer)
      finish(0)
    }
  }
}, 50)
setTimeout(() => finish(3), Number(timeoutS) * 1000)
