-- Rule `rule_id` deleted: 1, or 0 when it was not there; -2 when the session's life is not `owner` any more.
if owner ~= '' and redis.call('GET', life) ~= owner then return -2 end
local deleted = redis.call('HDEL', rules, rule_id)
redis.call('HDEL', spent, rule_id)
redis.call('SET', version, redis.call('INCR', versions))
return deleted
