-- One wrk script for every phase of benches/http.sh.
--
--   wrk -t2 -c64 -d10s -s benches/edgeq.lua http://127.0.0.1:PORT -- MODE QUEUE
--
-- MODE:
--   health  GET /healthz
--   push    POST /v1/queues/QUEUE/messages, a 128-byte raw body (201 expected)
--   pop     POST /v1/queues/QUEUE/pop, one raw message (200; 204 = the queue ran dry)
--   batch   POST /v1/queues/QUEUE/messages/batch, 1000 x 128-byte messages (200)
--   mixed   push and pop in turn on each thread (201 = a push, 200 = a pop, 204 = empty)
--
-- Every mode has the same per-request Lua cost (a `request()` returning a prebuilt
-- request and a `response()` that counts statuses), so `health` is a fair yardstick.
-- `done()` prints one line that http.sh parses:
--   EDGEQ us=<duration> s200=.. s201=.. s204=.. other=.. msgs=.. failed=.. errors=..
-- `msgs`/`failed` add up the `succeeded`/`failed` fields of batch answers; `other`
-- counts every status not listed; `errors` are socket errors and timeouts.

local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

local function batch_body()
  local entry = '{"body":"' .. string.rep("b", 128) .. '"}'
  local entries = {}
  for i = 1, 1000 do
    entries[i] = entry
  end
  return '{"messages":[' .. table.concat(entries, ",") .. ']}'
end

function init(args)
  mode = args[1]
  local queue = args[2] or "bench"
  s200, s201, s204, other, msgs, failed = 0, 0, 0, 0, 0, 0
  sent = 0
  local base = "/v1/queues/" .. queue
  local raw = { ["Content-Type"] = "application/octet-stream" }
  local json = { ["Content-Type"] = "application/json" }
  local push = wrk.format("POST", base .. "/messages", raw, string.rep("m", 128))
  local pop = wrk.format("POST", base .. "/pop", {}, "")
  if mode == "health" then
    reqs = { wrk.format("GET", "/healthz", {}, nil) }
  elseif mode == "push" then
    reqs = { push }
  elseif mode == "pop" then
    reqs = { pop }
  elseif mode == "batch" then
    reqs = { wrk.format("POST", base .. "/messages/batch", json, batch_body()) }
  elseif mode == "mixed" then
    reqs = { push, pop }
  else
    error("unknown mode " .. tostring(mode))
  end
end

function request()
  sent = sent + 1
  return reqs[sent % #reqs + 1]
end

function response(status, headers, body)
  if status == 200 then
    s200 = s200 + 1
    if mode == "batch" then
      msgs = msgs + tonumber(body:match('"succeeded":(%d+)') or "0")
      failed = failed + tonumber(body:match('"failed":(%d+)') or "0")
    end
  elseif status == 201 then
    s201 = s201 + 1
  elseif status == 204 then
    s204 = s204 + 1
  else
    other = other + 1
  end
end

function done(summary, latency, requests)
  local t = { s200 = 0, s201 = 0, s204 = 0, other = 0, msgs = 0, failed = 0 }
  for _, thread in ipairs(threads) do
    for k, _ in pairs(t) do
      t[k] = t[k] + (thread:get(k) or 0)
    end
  end
  local e = summary.errors
  io.write(string.format(
    "EDGEQ us=%d s200=%d s201=%d s204=%d other=%d msgs=%d failed=%d errors=%d p50us=%d p99us=%d\n",
    summary.duration, t.s200, t.s201, t.s204, t.other, t.msgs, t.failed,
    e.connect + e.read + e.write + e.timeout,
    latency:percentile(50), latency:percentile(99)))
end
