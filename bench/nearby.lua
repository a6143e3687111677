-- wrk script: cycle through a file of request paths (one per line), each
-- thread from its own offset, and print one parseable summary line at the end.
-- usage: wrk ... -s bench/nearby.lua http://127.0.0.1:PORT -- PATHS_FILE

local paths = {}
local idx = 1
local counter = 0

function setup(thread)
  thread:set("id", counter)
  counter = counter + 1
end

function init(args)
  local file = assert(io.open(args[1], "r"), "cannot open " .. tostring(args[1]))
  for line in file:lines() do
    if #line > 0 then paths[#paths + 1] = line end
  end
  file:close()
  assert(#paths > 0, "no request paths in " .. args[1])
  -- spread the threads over the list so they do not ask the same points in step
  idx = ((id or 0) * 7919) % #paths + 1
end

function request()
  local p = paths[idx]
  idx = idx % #paths + 1
  return wrk.format("GET", p)
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"requests":%d,"duration_us":%d,"bytes":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,"p999_us":%d,"max_us":%d,"mean_us":%.1f,"err_connect":%d,"err_read":%d,"err_write":%d,"err_status":%d,"err_timeout":%d}\n',
    summary.requests, summary.duration, summary.bytes,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency:percentile(99.9), latency.max, latency.mean,
    e.connect, e.read, e.write, e.status, e.timeout))
end
