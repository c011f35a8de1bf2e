-- wrk script for the Strait bench: optional HTTP/1.1 pipelining plus a machine-readable summary.
--   wrk ... -s wrk-report.lua URL -- DEPTH
-- DEPTH > 1 sends DEPTH requests back to back per write (wrk then counts each response, and
-- records one latency sample per batch). done() runs in wrk's main Lua state, where init() never
-- ran, so it must not rely on `depth`. It prints one line the runner parses:
--   BENCH_JSON {"requests":..,"bytes":..,"duration_us":..,"errors":{..},"latency_us":{..}}

local depth = 1

function init(args)
  depth = tonumber(args[1]) or 1
  if depth > 1 then
    local one = wrk.format(nil)
    local batch = one:rep(depth)
    -- Defining request() only when pipelining keeps wrk's faster static-request path otherwise.
    request = function()
      return batch
    end
  end
end

-- Percentiles. wrk 4.1 corrects its latency histogram for coordinated omission by adding
-- synthetic samples at (latency - k * expected interval), with the interval taken as
-- runtime / (responses / connections). Those samples may land below the recorded minimum
-- (always with pipelining, where the interval is DEPTH times too small), and
-- latency:percentile() only scans from the minimum but ranks against the full count: high
-- percentiles then come back as 0. So: find the fraction f of samples that percentile() can see
-- (the largest p that does not return 0, by bisection), and read percentile q at q * f.
local function visible_fraction(latency)
  local lo, hi = 0, 100
  for _ = 1, 40 do
    local mid = (lo + hi) / 2
    if latency:percentile(mid) ~= 0 then lo = mid else hi = mid end
  end
  return lo / 100
end

function done(summary, latency, requests)
  local e = summary.errors
  local qs = { 50, 75, 90, 99, 99.9 }
  local f = visible_fraction(latency)
  local p = {}
  for _, q in ipairs(qs) do
    p[#p + 1] = string.format('"p%s":%d', tostring(q), latency:percentile(q * f))
  end
  io.write(string.format(
    'BENCH_JSON {"requests":%d,"bytes":%d,"duration_us":%d,' ..
    '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},' ..
    '"latency_us":{"visible_fraction":%.6f,"min":%d,"mean":%.1f,"max":%d,"stdev":%.1f,"wrk_p99":%d,%s}}\n',
    summary.requests, summary.bytes, summary.duration,
    e.connect, e.read, e.write, e.status, e.timeout,
    f, latency.min, latency.mean, latency.max, latency.stdev, latency:percentile(99), table.concat(p, ',')))
end
