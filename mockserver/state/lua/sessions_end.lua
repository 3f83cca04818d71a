-- End a session (`lapsed_only`: '1' to end it only if it lapsed, the sweep's). Returns {how it stood: 'live',
-- 'lapsed' or 'none' (nothing done), whether it was ended 1/0, a generation to unlink or -1}.
local where = standing(now_ms())
if where == 'none' or (lapsed_only == '1' and where == 'live') then return {where, 0, -1} end
return {where, 1, finish()}
