-- A request that passed routing and authentication needs its session (`cap`: --max-sessions). Returns {its
-- life, or false past the cap; a generation to unlink or -1; another}. A new life starts clean: what a request
-- still in flight at the end of the last one wrote (rules, an id, generation 0) is dropped.
local now = now_ms()
local where = standing(now)
if where == 'live' then
  redis.call('ZADD', live_key, now, session_id)
  redis.call('HINCRBY', meta_key, 'requests', 1)
  return {life(), -1, -1}
end
local old = -1
if where == 'lapsed' then old = finish() end
if redis.call('ZCOUNT', live_key, now - tonumber(idle_ms), '+inf') >= tonumber(cap) then return {false, old, -1} end
local stray = written(redis.call('GET', generation_key) or '0')
redis.call('DEL', rules_key, spent_key, next_rule_key, version_key, journal_key, journal_ids_key)
local number = redis.call('INCR', counter_key)
redis.call('SET', generation_key, number)
redis.call('SET', life_key, number)
redis.call('ZADD', live_key, now, session_id)
redis.call('HSET', meta_key, 'created', now, 'requests', 1)
return {tostring(number), old, stray}
