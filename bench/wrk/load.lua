-- Load for the benchmarks: wrk -s bench/wrk/load.lua URL -- TOKEN QUOTA KIND [VALUES...]
--
-- KIND order SKU...       POST /api/v1/orders/, one line of a random SKU of the list
-- KIND write [PATH]       POST PATH (a write baseline; default /bench/write/)
-- KIND read PREFIX LO HI  GET PREFIX<id>/ for ids picked at random in LO..HI
-- KIND paths PATH...      GET one of the PATHs, picked at random
--
-- An empty TOKEN sends no Authorization header. The environment's WRK_COOKIE, when set, is sent
-- as the Cookie header (an admin session: a request with a token skips the session middleware).
--
-- QUOTA 0 runs for wrk's duration. QUOTA N sends exactly N requests of KIND (shared out over
-- the threads) and stops each thread once its share is answered; while the last answers are
-- awaited, its idle connections send GET /healthz (answered 200, not counted). A request lost
-- to a socket error is never answered: a thread gives up waiting GIVE_UP seconds after its last
-- request (wrk's --timeout is shorter), and the caller counts what was created. wrk itself
-- runs until its duration is over, so a stopped thread prints "thread-done" and the caller
-- interrupts wrk (SIGINT, on which it prints its results) once every thread is done.
-- done() prints one JSON line with the counts and latency percentiles (microseconds).

local threads = {}
local next_id = 0

function setup(thread)
  next_id = next_id + 1
  thread:set("id", next_id)
  table.insert(threads, thread)
end

local token, quota, kind, values
-- Globals, so done() can read them from each thread with thread:get().
sent, answered, failed, refused = 0, 0, 0, 0
local all_sent_at = nil
local GIVE_UP = 35
local bodies = {}

function init(args)
  token = args[1]
  local total = tonumber(args[2])
  kind = args[3]
  values = {}
  for i = 4, #args do values[#values + 1] = args[i] end
  local nthreads = tonumber(os.getenv("WRK_THREADS") or "1")
  local id = wrk.thread:get("id")
  quota = math.floor(total / nthreads)
  if id <= total % nthreads then quota = quota + 1 end
  if total == 0 then quota = 0 end
  if token ~= "" then wrk.headers["Authorization"] = "Token " .. token end
  local cookie = os.getenv("WRK_COOKIE")
  if cookie and cookie ~= "" then wrk.headers["Cookie"] = cookie end
  wrk.headers["Content-Type"] = "application/json"
  if kind == "order" then
    for i, sku in ipairs(values) do
      bodies[i] = '{"items": [{"sku": "' .. sku .. '", "quantity": 1}]}'
    end
  end
  math.randomseed(os.time() + id)
  -- wrk calls request() once on the first thread's state to check the script, before the thread
  -- runs, and never sends what it returns: that call is not one of the quota.
  if id == 1 then sent = -1 end
end

function request()
  if quota > 0 and sent >= quota then
    all_sent_at = all_sent_at or os.time()
    return wrk.format("GET", "/healthz")
  end
  sent = sent + 1
  if kind == "order" then
    return wrk.format("POST", "/api/v1/orders/", nil, bodies[math.random(#bodies)])
  elseif kind == "write" then
    return wrk.format("POST", values[1] or "/bench/write/", nil, '{"items": [{"sku": "BENCH", "quantity": 1}]}')
  elseif kind == "paths" then
    return wrk.format("GET", values[math.random(#values)])
  else
    local id = math.random(tonumber(values[2]), tonumber(values[3]))
    return wrk.format("GET", values[1] .. id .. "/")
  end
end

local finished = false

function thread_done()
  if not finished then
    finished = true
    io.write("thread-done\n")
    io.stdout:flush()
  end
  wrk.thread:stop()
end

function response(status, headers, body)
  if quota > 0 and status == 200 then  -- an idle connection's /healthz
    if os.time() - all_sent_at > GIVE_UP then thread_done() end
    return
  end
  answered = answered + 1
  if status >= 300 then failed = failed + 1 end  -- no benchmarked request is redirected
  if status == 409 then refused = refused + 1 end  -- an order turned away as sold out
  if quota > 0 and answered >= quota then thread_done() end
end

function done(summary, latency, requests)
  local total_answered, total_failed, total_refused = 0, 0, 0
  for _, thread in ipairs(threads) do
    total_answered = total_answered + thread:get("answered")
    total_failed = total_failed + thread:get("failed")
    total_refused = total_refused + thread:get("refused")
  end
  local e = summary.errors
  io.write(string.format(
    '{"requests": %d, "answered": %d, "failed": %d, "refused": %d, "duration_us": %d, "connect_errors": %d, ' ..
    '"read_errors": %d, "write_errors": %d, "status_errors": %d, "timeouts": %d, ' ..
    '"p50_us": %d, "p90_us": %d, "p99_us": %d, "max_us": %d}\n',
    summary.requests, total_answered, total_failed, total_refused, summary.duration, e.connect, e.read, e.write, e.status,
    e.timeout, latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max))
end
