-- wrk's script for the serve section (bench/serve.ts): POSTs /score bodies read from a file, one
-- JSON body a line, each thread starting at its own place in the list, and prints the run's
-- numbers as one JSON line at the end.
--   wrk -t T -c C -d 60s --timeout 120s -s bench/serve.lua http://127.0.0.1:PORT -- bodies.jsonl T

local threads = 0

function setup(thread)
  thread:set("thread_index", threads)
  threads = threads + 1
end

local bodies = {}
local cursor = 0

function init(args)
  for line in io.lines(args[1]) do bodies[#bodies + 1] = line end
  -- Threads start spread over the list, so that C connections send C different texts first.
  cursor = math.floor(thread_index * #bodies / tonumber(args[2]))
end

function request()
  local body = bodies[(cursor % #bodies) + 1]
  cursor = cursor + 1
  return wrk.format("POST", "/score", { ["Content-Type"] = "application/json" }, body)
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{"requests":%d,"durationUs":%d,"status":%d,"connect":%d,"read":%d,"write":%d,"timeout":%d,"p50Us":%d,"p99Us":%d,"maxUs":%d}\n',
    summary.requests, summary.duration, e.status, e.connect, e.read, e.write, e.timeout,
    latency:percentile(50), latency:percentile(99), latency.max))
end
