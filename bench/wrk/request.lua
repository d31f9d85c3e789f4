-- wrk script for `npm run bench`: one request shape from the environment, and a JSON summary
-- line with exact percentiles (p99.9 included) for bench/lib/load.ts to parse.
--   BENCH_WRK_METHOD  GET | POST
--   BENCH_WRK_AUTH    value of the Authorization header (optional)
--   BENCH_WRK_BODY    JSON request body (optional; sent with Content-Type: application/json)
--   BENCH_WRK_HEADERS more headers, "Name: value" lines (optional)
wrk.method = os.getenv("BENCH_WRK_METHOD") or "GET"
local auth = os.getenv("BENCH_WRK_AUTH") or ""
if auth ~= "" then wrk.headers["Authorization"] = auth end
for name, value in string.gmatch(os.getenv("BENCH_WRK_HEADERS") or "", "([^:\n]+):%s*([^\n]*)") do
  wrk.headers[name] = value
end
local body = os.getenv("BENCH_WRK_BODY") or ""
if body ~= "" then
  wrk.body = body
  wrk.headers["Content-Type"] = "application/json"
end

done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests":%d,"duration_us":%d,"connect_errors":%d,"read_errors":%d,"write_errors":%d,' ..
    '"status_errors":%d,"timeout_errors":%d,"p50_us":%d,"p99_us":%d,"p999_us":%d}\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(99), latency:percentile(99.9)))
end
