-- wrk script: POST binary-mode CloudEvents, each with its own id (so none is a duplicate).
local thread_id = 0
local counter = 0

function setup(thread)
  thread_id = thread_id + 1
  thread:set("tid", thread_id)
end

function init(args)
  math.randomseed(os.time() + (tid or 0))
  prefix = string.format("%d-%d", tid or 0, math.random(1, 1000000000))
  body = '{"project":"bench","stage":"dev","service":"svc","labels":{"run":"1"},"test":{"teststrategy":"none"}}'
  event_type = os.getenv("EVENT_TYPE") or "sh.keptn.event.bench.triggered"
end

function request()
  counter = counter + 1
  local headers = {
    ["ce-specversion"] = "1.0",
    ["ce-id"] = prefix .. "-" .. counter,
    ["ce-source"] = "bench",
    ["ce-type"] = event_type,
    ["ce-shkeptncontext"] = "bench",
    ["Content-Type"] = "application/json",
  }
  return wrk.format("POST", "/", headers, body)
end

function done(summary, latency, requests)
  io.write(string.format('{"requests": %d, "seconds": %f, "errors_status": %d, "errors_other": %d}\n',
    summary.requests, summary.duration / 1e6, summary.errors.status,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
end
