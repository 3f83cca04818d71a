-- A fault rule added: the cap, a new id, the rule (its spent count cleared: a process may still count a
-- deleted rule's old matches under its id), and the rules' new version, in one atomic step.
-- Returns the rule's number; -1 past the cap; -2 when the session's life is not `owner` any more.
if owner ~= '' and redis.call('GET', life) ~= owner then return -2 end
if redis.call('HLEN', rules) >= tonumber(cap) then return -1 end
local number = redis.call('INCR', next_id)
redis.call('HSET', rules, 'f' .. number, spec)
redis.call('HDEL', spent, 'f' .. number)
redis.call('SET', version, redis.call('INCR', versions))
return number
