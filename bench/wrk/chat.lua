-- wrk script for the turnout overhead benchmark (bench/overhead.py drives it).
--
-- Environment (read by every wrk thread):
--   BENCH_MODE     nonstream | stream | mixed   (mixed alternates the two, for the soak)
--   BENCH_MODEL    model name sent in the body  (default "bench")
--   BENCH_AUTH     bearer token; sent as "Authorization: Bearer ..." when set
--   BENCH_HEADERS  more request headers, one "Name: value" per line (set for one target only)
--   BENCH_RATE     total requests/second across all threads; 0 or unset = closed loop
--   BENCH_THREADS  the -t given to wrk (to split BENCH_RATE between threads)
--
-- Closed loop (no BENCH_RATE): each connection sends its next request as soon as the
-- previous response has been read in full, which is wrk's normal behaviour.
--
-- Open loop (BENCH_RATE > 0): requests are due on a fixed schedule, one every
-- threads/rate seconds per thread. A connection that becomes free claims the next due
-- slot and waits for it (wrk's delay() hook). A slot that is already past when it is
-- claimed means every connection was busy at its due time; the send is then late, and
-- wrk would time it from the late send, hiding queueing (coordinated omission). Late
-- sends are counted (and the worst one kept) so the driver can reject such a run rather
-- than report a flattering latency.
--
-- response() counts every status other than 200 and every 200 whose body lacks
-- '"choices"' (JSON) or 'data: [DONE]' (SSE).
--
-- done() prints one line "BENCH_JSON {...}" with wrk's latency percentiles (microseconds,
-- request written -> response read in full, i.e. the whole SSE stream when streaming),
-- the request/error counts and the lateness counters.

local ffi = require("ffi")
ffi.cdef [[
typedef struct { long tv_sec; long tv_nsec; } bench_timespec_t;
int clock_gettime(int clk_id, bench_timespec_t *tp);
]]
local ts = ffi.new("bench_timespec_t")
local function now_us()
  ffi.C.clock_gettime(1, ts) -- CLOCK_MONOTONIC
  return tonumber(ts.tv_sec) * 1000000 + tonumber(ts.tv_nsec) / 1000
end

local mode = os.getenv("BENCH_MODE") or "nonstream"
local model = os.getenv("BENCH_MODEL") or "bench"
local auth = os.getenv("BENCH_AUTH")
local extra_headers = os.getenv("BENCH_HEADERS") or ""
local rate = tonumber(os.getenv("BENCH_RATE") or "0") or 0
local nthreads = tonumber(os.getenv("BENCH_THREADS") or "1") or 1

local function body(stream)
  local b = '{"model": "' .. model .. '", "messages": [{"role": "user", "content": "hi"}], '
      .. '"max_tokens": 16'
  if stream then
    b = b .. ', "stream": true'
  end
  return b .. '}'
end

wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
if auth and auth ~= "" then
  wrk.headers["Authorization"] = "Bearer " .. auth
end
for line in string.gmatch(extra_headers, "[^\n]+") do
  local name, value = string.match(line, "^([^:]+):%s*(.*)$")
  if name then
    wrk.headers[name] = value
  end
end

if mode == "mixed" then
  local reqs = {
    wrk.format("POST", nil, nil, body(false)),
    wrk.format("POST", nil, nil, body(true)),
  }
  local k = 0
  function request()
    k = k + 1
    return reqs[(k % 2) + 1]
  end
else
  wrk.body = body(mode == "stream")
end

-- per-thread state (each wrk thread has its own Lua state)
late_n = 0       -- sends whose slot was already >1 ms past when claimed
late_max_us = 0  -- worst lateness
sent_n = 0       -- slots claimed
non200_n = 0     -- responses whose status is not 200
bad_body_n = 0   -- 200 responses without the expected body ("choices" / "[DONE]")

function response(status, headers, body)
  if status ~= 200 then
    non200_n = non200_n + 1
    return
  end
  local ok
  if mode == "stream" then
    ok = body and string.find(body, "data: [DONE]", 1, true)
  elseif mode == "nonstream" then
    ok = body and string.find(body, '"choices"', 1, true)
  else
    ok = body and (string.find(body, "data: [DONE]", 1, true)
      or string.find(body, '"choices"', 1, true))
  end
  if not ok then
    bad_body_n = bad_body_n + 1
  end
end

local threads = {}
local thread_seq = 0

function setup(thread)
  thread_seq = thread_seq + 1
  thread:set("tid", thread_seq)
  table.insert(threads, thread)
end

if rate > 0 then
  local interval_us = 1000000 * nthreads / rate
  local next_slot = nil

  function delay()
    local now = now_us()
    if next_slot == nil then
      -- stagger the threads' schedules across one interval
      next_slot = now + interval_us * ((tid or 1) - 1) / nthreads
    end
    local slot = next_slot
    next_slot = next_slot + interval_us
    sent_n = sent_n + 1
    local d = slot - now
    if d < 0 then
      if -d > 1000 then
        late_n = late_n + 1
      end
      if -d > late_max_us then
        late_max_us = -d
      end
      return 0
    end
    return math.floor(d / 1000 + 0.5)
  end
end

function done(summary, latency, requests)
  local late, late_max, sent, non200, bad_body = 0, 0, 0, 0, 0
  for _, t in ipairs(threads) do
    late = late + (tonumber(t:get("late_n")) or 0)
    sent = sent + (tonumber(t:get("sent_n")) or 0)
    non200 = non200 + (tonumber(t:get("non200_n")) or 0)
    bad_body = bad_body + (tonumber(t:get("bad_body_n")) or 0)
    local m = tonumber(t:get("late_max_us")) or 0
    if m > late_max then
      late_max = m
    end
  end
  local e = summary.errors
  local parts = {
    string.format('"duration_us": %d', summary.duration),
    string.format('"requests": %d', summary.requests),
    string.format('"non200": %d', non200),
    string.format('"bad_body": %d', bad_body),
    string.format('"bytes": %d', summary.bytes),
    string.format('"errors": {"connect": %d, "read": %d, "write": %d, "status": %d, '
      .. '"timeout": %d}', e.connect, e.read, e.write, e.status, e.timeout),
    string.format('"latency_us": {"min": %d, "max": %d, "mean": %.1f, "stdev": %.1f, '
      .. '"p50": %d, "p75": %d, "p90": %d, "p99": %d, "p999": %d}',
      latency.min, latency.max, latency.mean, latency.stdev,
      latency:percentile(50), latency:percentile(75), latency:percentile(90),
      latency:percentile(99), latency:percentile(99.9)),
    string.format('"open_loop": {"rate": %.3f, "slots": %d, "late": %d, "late_max_us": %d}',
      rate, sent, late, late_max),
  }
  io.write("BENCH_JSON {" .. table.concat(parts, ", ") .. "}\n")
end
