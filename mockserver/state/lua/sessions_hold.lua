-- A request about to wait `hold_ms` holds its session live that long, if it still is (`idle_ms`:
-- --session-idle): its score moves ahead, never back. 1 if held.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local score = redis.call('ZSCORE', live_key, session_id)
if not score or tonumber(score) < now - tonumber(idle_ms) then return 0 end
redis.call('ZADD', live_key, 'XX', 'GT', now + tonumber(hold_ms), session_id)
return 1
