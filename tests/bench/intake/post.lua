-- post.lua — wrk script for tests/bench/intake/run.sh: POSTs /v1/reports with a unique
-- external_id per request and a ~300-byte Arabic body, counts the status codes, optionally paces
-- requests to a fixed offered rate, and prints one `wasl:` result line from done().
--
-- Environment (read in every wrk thread): WASL_BENCH_TOKEN (bearer token, scope reports),
-- WASL_BENCH_RUN (a random prefix for this run's external ids), WASL_BENCH_RATE (offered
-- requests/s over all threads; 0 or unset = as fast as possible), WASL_BENCH_THREADS (wrk -t).
--
-- Pacing: wrk sends a connection's next request after delay() ms. With LuaJIT's ffi each thread
-- keeps a schedule (one slot every threads/rate s) and delays each request to its slot, so the
-- offered rate holds whatever the latency; without ffi it falls back to a fixed
-- connections/rate delay per connection. wrk measures latency from the moment a request is
-- written, so queueing in front of an overloaded server is not in the percentiles (wrk2's
-- coordinated-omission correction is not available here).

local token = os.getenv("WASL_BENCH_TOKEN") or ""
local run_id = os.getenv("WASL_BENCH_RUN") or tostring(os.time())
local rate = tonumber(os.getenv("WASL_BENCH_RATE") or "0") or 0
local nthreads = tonumber(os.getenv("WASL_BENCH_THREADS") or "1") or 1
local nconnections = tonumber(os.getenv("WASL_BENCH_CONNECTIONS") or "1") or 1
-- WASL_BENCH_UNIQUE_PHONES=1: a different beneficiary per request (05 + thread + counter), so
-- that the notifier's per-recipient limits do not hold back the end-to-end bench's
-- acknowledgements; otherwise every report comes from the same number.
local unique_phones = os.getenv("WASL_BENCH_UNIQUE_PHONES") == "1"

-- ~300 bytes of UTF-8: what a beneficiary writes about a hearing date.
local BODY_TEXT = "السلام عليكم، أرجو إفادتي عن موعد الجلسة القادمة في القضية رقم " ..
    "٤٥١٢٣٤٥٦٧٨ لدى المحكمة الإدارية بالرياض، فقد تأجلت الجلسة السابقة ولم يصلني إشعار. وشكراً."

local threads = {}
local next_id = 1

function setup(thread)
    thread:set("id", next_id)
    table.insert(threads, thread)
    next_id = next_id + 1
end

local now_ms
do
    local ok, ffi = pcall(require, "ffi")
    if ok then
        pcall(ffi.cdef, [[
            typedef struct { long tv_sec; long tv_nsec; } wasl_bench_timespec;
            int clock_gettime(int clk_id, wasl_bench_timespec *tp);
        ]])
        local ts = ffi.new("wasl_bench_timespec")
        local CLOCK_MONOTONIC = 1
        now_ms = function()
            ffi.C.clock_gettime(CLOCK_MONOTONIC, ts)
            return tonumber(ts.tv_sec) * 1000 + tonumber(ts.tv_nsec) / 1e6
        end
    end
end

function init(args)
    counter = 0
    s200, s201, s429, s503, s4xx, s5xx, sother = 0, 0, 0, 0, 0, 0, 0
    prefix = string.format("bench-%s-%d-", run_id, id)
    headers = {
        ["Content-Type"] = "application/json",
        ["Authorization"] = "Bearer " .. token,
    }
    if rate > 0 then
        interval_ms = 1000 * nthreads / rate
        next_slot = nil
    end
end

if rate > 0 then
    function delay()
        if not now_ms then
            return nconnections / rate * 1000
        end
        local now = now_ms()
        if next_slot == nil or next_slot < now - 1000 then
            next_slot = now  -- start, or fell more than a second behind: do not burst to catch up
        end
        local wait = next_slot - now
        next_slot = next_slot + interval_ms
        if wait < 0 then
            return 0
        end
        return wait
    end
end

function request()
    counter = counter + 1
    local phone = "0551234567"
    if unique_phones then
        phone = string.format("05%d%07d", id % 10, counter % 10000000)
    end
    local body = string.format(
        '{"channel":"web","external_id":"%s%d","lang":"ar","subject":"استفسار عن موعد جلسة",' ..
        '"from":{"phone":"%s"},"body":"%s"}', prefix, counter, phone, BODY_TEXT)
    return wrk.format("POST", "/v1/reports", headers, body)
end

function response(status, hdrs, body)
    if status == 201 then s201 = s201 + 1
    elseif status == 200 then s200 = s200 + 1
    elseif status == 429 then s429 = s429 + 1
    elseif status == 503 then s503 = s503 + 1
    elseif status >= 400 and status < 500 then s4xx = s4xx + 1
    elseif status >= 500 then s5xx = s5xx + 1
    else sother = sother + 1 end
end

function done(summary, latency, requests)
    local t = {s200 = 0, s201 = 0, s429 = 0, s503 = 0, s4xx = 0, s5xx = 0, sother = 0}
    for _, thread in ipairs(threads) do
        for k, _ in pairs(t) do
            t[k] = t[k] + (thread:get(k) or 0)
        end
    end
    local duration_s = summary.duration / 1e6
    local e = summary.errors
    io.write(string.format(
        "wasl: requests=%d duration_s=%.2f created=%d per_s=%.1f created_per_s=%.1f " ..
        "p50_ms=%.2f p90_ms=%.2f p99_ms=%.2f max_ms=%.2f " ..
        "s200=%d s201=%d s429=%d s503=%d s4xx=%d s5xx=%d other=%d " ..
        "connect_err=%d read_err=%d write_err=%d timeouts=%d paced=%s\n",
        summary.requests, duration_s, t.s201, summary.requests / duration_s,
        t.s201 / duration_s,
        latency:percentile(50) / 1000, latency:percentile(90) / 1000,
        latency:percentile(99) / 1000, latency.max / 1000,
        t.s200, t.s201, t.s429, t.s503, t.s4xx, t.s5xx, t.sother,
        e.connect, e.read, e.write, e.timeout,
        rate > 0 and (now_ms and "schedule" or "fixed-delay") or "no"))
end
