-- wrk script of the bench: adds the bearer token (BENCH_TOKEN) and prints one JSON line at the end.
-- BENCH_SPREAD="host:port,host:port": wrk's threads go to these servers in turn (thread i to the
-- i-th, round robin), so one wrk process drives several instances with one set of statistics.
local token = os.getenv("BENCH_TOKEN")
if token ~= nil and token ~= "" then
  wrk.headers["Authorization"] = "Bearer " .. token
end

local spread = os.getenv("BENCH_SPREAD")
if spread ~= nil and spread ~= "" then
  local targets = {}
  for host, port in string.gmatch(spread, "([^,:]+):(%d+)") do
    table.insert(targets, wrk.lookup(host, port)[1])
  end
  local started = 0
  setup = function(thread)
    thread.addr = targets[(started % #targets) + 1]
    started = started + 1
  end
end

done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"requests":%d,"duration_us":%d,"bytes":%d,"connect_errors":%d,"read_errors":%d,"write_errors":%d,"status_errors":%d,"timeouts":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,"max_us":%d,"mean_us":%.1f}\n',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max, latency.mean))
end
