-- wrk script: replays pre-signed, distinct webhook deliveries in file order (use -t1).
-- usage: wrk -t1 -cC -dDs -s wrk_webhook.lua http://127.0.0.1:8787/webhook -- $PEER_RUN_DIR/events_TAG.bin
-- globals (not locals) so that done() can read them with thread:get()
reqs, n, idx, issued, ok2xx, non2xx, wrapped = {}, 0, 0, 0, 0, 0, 0
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args)
  local f = assert(io.open(args[1], "rb")); local data = f:read("*a"); f:close()
  local pos = 1
  while pos <= #data do
    local nl1 = string.find(data, "\n", pos, true)
    local sig = string.sub(data, pos, nl1 - 1)
    local nl2 = string.find(data, "\n", nl1 + 1, true)
    local len = tonumber(string.sub(data, nl1 + 1, nl2 - 1))
    local body = string.sub(data, nl2 + 1, nl2 + len)
    pos = nl2 + len + 1
    n = n + 1
    reqs[n] = wrk.format("POST", "/webhook", { ["Content-Type"] = "application/json", ["Stripe-Signature"] = sig }, body)
  end
  data = nil
end
function request()
  idx = idx + 1
  if idx > n then idx = 1; wrapped = wrapped + 1 end
  issued = issued + 1
  return reqs[idx]
end
function response(status, headers, body)
  if status >= 200 and status < 300 then ok2xx = ok2xx + 1 else non2xx = non2xx + 1 end
end
function done(summary, latency, requests)
  local t = threads[1]
  io.write(string.format('WRKJSON {"requests":%d,"duration_s":%.3f,"rps":%.1f,"lat_mean_ms":%.3f,"lat_p50_ms":%.3f,"lat_p90_ms":%.3f,"lat_p99_ms":%.3f,"lat_max_ms":%.3f,"issued":%d,"ok2xx":%d,"non2xx":%d,"wrapped":%d,"loaded":%d,"err_connect":%d,"err_read":%d,"err_write":%d,"err_timeout":%d}\n',
    summary.requests, summary.duration / 1e6, summary.requests / (summary.duration / 1e6),
    latency.mean / 1000, latency:percentile(50) / 1000, latency:percentile(90) / 1000, latency:percentile(99) / 1000, latency.max / 1000,
    t:get("issued"), t:get("ok2xx"), t:get("non2xx"), t:get("wrapped"), t:get("n"),
    summary.errors.connect, summary.errors.read, summary.errors.write, summary.errors.timeout))
end
