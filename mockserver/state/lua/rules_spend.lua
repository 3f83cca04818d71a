-- One match of rule `rule_id` counted: its count now; -2 when the session's life is not `owner` any more.
if owner ~= '' and redis.call('GET', life) ~= owner then return -2 end
return redis.call('HINCRBY', spent, rule_id, 1)
