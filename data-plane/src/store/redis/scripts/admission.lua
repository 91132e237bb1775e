-- The admission checks of a new execution, shared by `create.lua` and `join.lua`.
-- An Idempotency-Key seen before (`request` '' when the call has none): {1, tracking id}
-- for the same request, {2} for another; nil when unseen.
local function replay(key, request)
  if request == '' then return nil end
  local seen = redis.call('GET', key)
  if not seen then return nil end
  local space = string.find(seen, ' ', 1, true)
  if space and string.sub(seen, 1, space - 1) == request then
    return {1, string.sub(seen, space + 1)}
  end
  return {2}
end
-- Counts an attempt against the burst limit (0: none): the requests left this second (-1
-- without a limit), or nil when over it.
local function burst(key, limit)
  limit = tonumber(limit)
  if limit <= 0 then return -1 end
  local count = redis.call('INCR', key)
  if count == 1 then redis.call('PEXPIRE', key, 2000) end
  if count > limit then return nil end
  return limit - count
end
