-- What the session scripts share. Keys: `live_key` the live sessions (zset: a test session's score is its
-- last use), `generation_key` the session's, `rules_key` `spent_key` `next_rule_key` `version_key` its fault
-- rules', `journal_key` `journal_ids_key` its journal's, `meta_key` its record (created, requests; the default
-- session's last use), `counter_key` the namespace's counter, `life_key` the session's life. Arguments:
-- `session_id`, `idle_ms` (--session-idle), `prefix` (of its keys).
-- A life is a session from its creation to its end; its number, drawn from the namespace's counter (as
-- generations and rules' versions are), never repeats, so what a process holds of an ended life (a store,
-- compiled rules) is never taken for the new one's. An ended session leaves no key.
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function standing(now)
  local score = redis.call('ZSCORE', live_key, session_id)
  if not score then return 'none' end
  if tonumber(score) >= now - tonumber(idle_ms) then return 'live' end
  return 'lapsed'
end
local function written(generation)
  if redis.call('EXISTS', prefix .. generation .. ':keys', prefix .. generation .. ':next_id') > 0 then return generation end
  return -1
end
local function life()  -- a live session's; one made now for a session live before lives were kept
  local number = redis.call('GET', life_key)
  if number then return number end
  number = tostring(redis.call('INCR', counter_key))
  redis.call('SET', life_key, number)
  return number
end
local function finish()
  local generation = redis.call('GET', generation_key) or '0'
  redis.call('ZREM', live_key, session_id)
  redis.call('DEL', generation_key, rules_key, spent_key, next_rule_key, version_key, journal_key, journal_ids_key, meta_key, life_key)
  return written(generation)
end
