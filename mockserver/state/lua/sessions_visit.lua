-- A request arrives (`is_default`: '1' for the default session, which never ends). Returns {live 1/0, the rules'
-- version, its life, a generation to unlink or -1}. A lapsed session ends here.
local now = now_ms()
if is_default == '1' then
  redis.call('HSETNX', meta_key, 'created', now)
  redis.call('HSET', meta_key, 'last_used', now)
  redis.call('HINCRBY', meta_key, 'requests', 1)
  return {1, redis.call('GET', version_key), false, -1}
end
local where = standing(now)
if where == 'live' then
  redis.call('ZADD', live_key, now, session_id)
  redis.call('HINCRBY', meta_key, 'requests', 1)
  return {1, redis.call('GET', version_key), life(), -1}
end
local old = -1
if where == 'lapsed' then old = finish() end
return {0, false, false, old}
