-- POST /api/v1/transactions/: every request a fresh transaction id, for one of the benchmark's
-- customers and merchants (their history is in the database), now.
-- Environment: BENCH_TOKEN (a JWT), BENCH_RUN (a unique prefix), BENCH_CUSTOMERS, BENCH_MERCHANTS.
dofile(os.getenv("BENCH_WRK_DIR") .. "/common.lua")

local countries = {"FR", "FR", "FR", "DE", "GB", "ES", "IT", "NL"}
local channels = {"pos", "pos", "online", "online", "recurring"}

function init(args)
  counter = 0
  math.randomseed(tid * 7919 + os.time())
  run = os.getenv("BENCH_RUN")
  customers = tonumber(os.getenv("BENCH_CUSTOMERS"))
  merchants = tonumber(os.getenv("BENCH_MERCHANTS"))
  headers = {
    ["Authorization"] = "Bearer " .. os.getenv("BENCH_TOKEN"),
    ["Content-Type"] = "application/json",
  }
end

function request()
  counter = counter + 1
  -- log-normal amounts around 45 (Box-Muller), like the generator's
  local z = math.sqrt(-2 * math.log(1 - math.random())) * math.cos(2 * math.pi * math.random())
  local body = string.format(
    '{"transaction_id":"%s-%d-%d","customer_id":"C%06d","merchant_id":"M%05d","amount":"%.2f",' ..
    '"currency":"EUR","country":"%s","channel":"%s","timestamp":"%s"}',
    run, tid, counter, math.random(0, customers - 1), math.random(0, merchants - 1),
    math.exp(3.8 + 0.8 * z), countries[math.random(#countries)], channels[math.random(#channels)],
    os.date("!%Y-%m-%dT%H:%M:%SZ"))
  return wrk.format("POST", "/api/v1/transactions/", headers, body)
end
