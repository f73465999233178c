-- GET /api/v1/auth/whoami/: the framework ceiling — the same authentication, rate limits and
-- DRF as scoring, and nothing else. Environment: BENCH_TOKEN.
dofile(os.getenv("BENCH_WRK_DIR") .. "/common.lua")

function init(args)
  headers = {["Authorization"] = "Bearer " .. os.getenv("BENCH_TOKEN")}
end

function request()
  return wrk.format("GET", "/api/v1/auth/whoami/", headers)
end
