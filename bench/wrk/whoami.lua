-- GET /api/v1/auth/whoami/: the framework ceiling — the same authentication, rate limits and
-- DRF as scoring, and nothing else. Environment: BENCH_TOKEN.
dofile(os.getenv("BENCH_WRK_DIR") .. "/common.lua")

function init(args)
  headers = {["Authorization"] = "Bearer " .. os.getenv("BENCH_TOKEN")}
end

function request()
  return wrk.format("GET", "/api/v1/auth/whoami/", headers)
end

function response(status, headers, body)
  count_response(status)
end

function done(summary, latency, requests)
  summary_json(summary, latency)
end
