-- Every rule of the session deleted; -2 when the session's life is not `owner` any more.
if owner ~= '' and redis.call('GET', life) ~= owner then return -2 end
redis.call('DEL', rules, spent)
redis.call('SET', version, redis.call('INCR', versions))
return 1
