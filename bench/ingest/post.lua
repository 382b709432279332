-- wrk script for bench/ingest: single-event POST /inbound/segment.
--
-- Every request carries a unique messageId ("<tag>-t<thread>-<counter>"), otherwise all but
-- the first request would be duplicates. The body is the product page's track event.
--
-- Environment:
--   BENCH_API_KEY  the Tidings API key (sent as "Authorization: Bearer <key>")
--   BENCH_TAG      prefix of every messageId in this run (unique per run)
--   BENCH_OUT      optional: where done() writes a JSON summary; the messageIds answered
--                  with a 2xx go to BENCH_OUT .. ".ids", one per line
--
-- wrk -t1 -c32 -d10s --latency -s bench/ingest/post.lua http://127.0.0.1:8000/inbound/segment

local key = os.getenv("BENCH_API_KEY") or ""
local tag = os.getenv("BENCH_TAG") or "bench"
local out_path = os.getenv("BENCH_OUT")

wrk.method = "POST"
wrk.headers["Authorization"] = "Bearer " .. key
wrk.headers["Content-Type"] = "application/json"
wrk.headers["User-Agent"] = "SegmentCourier"

local body_head = '{"messageId":"'
local body_tail = '","timestamp":"2021-12-07T08:41:59.410Z","type":"track",'
  .. '"email":"test@example.org","projectId":"4GgKeBoVJkT9EZL4vAmduv",'
  .. '"properties":{"property1":1,"property2":"test","property3":true},'
  .. '"userId":"test-user-cqw3gr","event":"Segment Test Event Name"}'

-- Main state: remember the threads so done() can collect their counters.
local threads = {}

function setup(thread)
  table.insert(threads, thread)
  thread:set("thread_number", #threads)
end

-- Thread state (globals so that thread:get can read them).
prefix = nil
sent = 0
statuses = {}
acked = {}
duplicates = 0
unparsed = 0

function init(args)
  prefix = tag .. "-t" .. thread_number .. "-"
end

function request()
  sent = sent + 1
  return wrk.format(nil, nil, nil, body_head .. prefix .. sent .. body_tail)
end

function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
  if status >= 200 and status < 300 then
    local message_id = body:match('"messageId":"([^"]*)"')
    if message_id then
      acked[#acked + 1] = message_id
    else
      unparsed = unparsed + 1
    end
    if body:find('"duplicate":true', 1, true) then
      duplicates = duplicates + 1
    end
  end
end

function done(summary, latency, requests)
  if not out_path then
    return
  end
  local total_sent, total_duplicates, total_unparsed = 0, 0, 0
  local status_totals = {}
  local ids = assert(io.open(out_path .. ".ids", "w"))
  for _, thread in ipairs(threads) do
    total_sent = total_sent + thread:get("sent")
    total_duplicates = total_duplicates + thread:get("duplicates")
    total_unparsed = total_unparsed + thread:get("unparsed")
    for status, count in pairs(thread:get("statuses")) do
      status_totals[status] = (status_totals[status] or 0) + count
    end
    for _, message_id in ipairs(thread:get("acked")) do
      ids:write(message_id, "\n")
    end
  end
  ids:close()
  local status_parts = {}
  for status, count in pairs(status_totals) do
    status_parts[#status_parts + 1] = string.format('"%d":%d', status, count)
  end
  local errors = summary.errors
  local out = assert(io.open(out_path, "w"))
  out:write(string.format(
    '{"duration_us":%d,"requests":%d,"bytes":%d,"sent":%d,"duplicates":%d,"unparsed":%d,'
      .. '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},'
      .. '"statuses":{%s},'
      .. '"latency_us":{"mean":%.1f,"stdev":%.1f,"max":%d,"p50":%d,"p90":%d,"p99":%d,"p999":%d}}\n',
    summary.duration, summary.requests, summary.bytes, total_sent, total_duplicates,
    total_unparsed, errors.connect, errors.read, errors.write, errors.status, errors.timeout,
    table.concat(status_parts, ","),
    latency.mean, latency.stdev, latency.max, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency:percentile(99.9)
  ))
  out:close()
end
