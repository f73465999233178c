-- Shared by the wrk scripts (they define init and request): per-thread counters of non-2xx
-- answers, and a JSON summary that bench/run.py reads from the last line wrk prints (latency
-- percentiles in microseconds).
local threads = {}

function setup(thread)
  thread:set("tid", #threads + 1)
  table.insert(threads, thread)
end

function response(status, headers, body)
  if status < 200 or status > 299 then
    failed = (failed or 0) + 1
  end
end

function done(summary, latency, requests)
  local failures = 0
  for _, thread in ipairs(threads) do
    failures = failures + (thread:get("failed") or 0)
  end
  local errors = summary.errors
  local socket_errors = errors.connect + errors.read + errors.write + errors.timeout
  io.write(string.format(
    '\nBENCH_JSON {"requests": %d, "duration_us": %d, "non_2xx": %d, "socket_errors": %d, ' ..
    '"p50_us": %d, "p95_us": %d, "p99_us": %d, "max_us": %d, "mean_us": %.1f}\n',
    summary.requests, summary.duration, failures, socket_errors,
    latency:percentile(50), latency:percentile(95), latency:percentile(99), latency.max, latency.mean))
end
