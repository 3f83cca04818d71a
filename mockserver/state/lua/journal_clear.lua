-- The session's journal emptied (the entries, not their ids), unless its life is not `owner` any more
-- ('' for the default session, which never ends): 1 if there was a stream, 0 otherwise.
if owner ~= '' and redis.call('GET', life) ~= owner then return 0 end
return redis.call('DEL', stream)
