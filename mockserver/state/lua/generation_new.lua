-- The session moves to a new generation (`generation`), drawn from the namespace's counter (`generations`):
-- returns the old one ('0': none), or -1 when the session's life is not `owner` any more ('' for the default
-- session, which has one).
if owner ~= '' and redis.call('GET', life) ~= owner then return -1 end
local old = redis.call('GET', generation) or '0'
redis.call('SET', generation, redis.call('INCR', generations))
return old
