-- wrk script for scripts/soak.py: one path at a fixed pace, every answer
-- checked against the status the application gives for that path.
-- Usage: wrk ... -s soak.lua URL -- <path> <expected status> <delay ms>
local threads = {}

function setup(thread)
   table.insert(threads, thread)
end

function init(args)
   path = args[1]
   expected = tonumber(args[2])
   pause = tonumber(args[3])
   ok = 0
   other = 0
   req = wrk.format("GET", path, { ["Connection"] = "close" })
end

function request()
   return req
end

-- Each connection waits this long before its next request: the pace.
function delay()
   return pause
end

function response(status, headers, body)
   if status == expected then
      ok = ok + 1
   else
      other = other + 1
   end
end

function done(summary, latency, requests)
   local ok_sum, other_sum = 0, 0
   for _, t in ipairs(threads) do
      ok_sum = ok_sum + t:get("ok")
      other_sum = other_sum + t:get("other")
   end
   local e = summary.errors
   io.write(string.format(
      '{"path":"%s","requests":%d,"expected_status":%d,"other_status":%d,' ..
      '"connect":%d,"read":%d,"write":%d,"timeout":%d,"p99_ms":%.3f}\n',
      threads[1]:get("path"), summary.requests, ok_sum, other_sum,
      e.connect, e.read, e.write, e.timeout, latency:percentile(99) / 1000))
end
