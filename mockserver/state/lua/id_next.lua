-- A new id from the generation's counter (`counter`), if the session's life is still `owner` ('' for the
-- default session) and its generation still `expected`: {'id', value}; else {'ended'}, or {'stale', the
-- generation now} (the old one's keys may be unlinked already: a counter made again there would stay for ever).
if owner ~= '' and redis.call('GET', life) ~= owner then return {'ended'} end
local now = redis.call('GET', generation) or '0'
if now ~= expected then return {'stale', now} end
return {'id', redis.call('INCR', counter)}
