-- One entry appended, its id the stream entry's (`<id>-0`, so "newer than N" is a range read); the stream is
-- capped at `size`. A test session's entry (`session_id` not '') is kept only if the session is still in the
-- life its request began in (`owner`) and has not lapsed meanwhile (`idle_ms`: --session-idle); it then marks
-- the session used at the end of its request (`live`: the live sessions). Else it goes with the session, as in
-- memory, and 0 is returned.
if session_id ~= '' then
  if redis.call('GET', life) ~= owner then return 0 end
  local t = redis.call('TIME')
  local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  local score = redis.call('ZSCORE', live, session_id)
  if not score or tonumber(score) < now - tonumber(idle_ms) then return 0 end
  redis.call('ZADD', live, 'XX', 'GT', now, session_id)
end
local id = redis.call('INCR', counter)
redis.call('XADD', stream, 'MAXLEN', size, id .. '-0', 'e', fields)
return id
