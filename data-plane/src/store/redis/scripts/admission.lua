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
-- Records the decision of an admission refused with `reply` (`replay`'s, {3} over the
-- burst limit, {4, holder} busy): a replay is a duplicate of the original execution.
local function refuse(key, d, reply)
  if reply[1] == 1 then
    decide(key, d, 'duplicate', 'idempotent_replay', {member('execution_id', reply[2])})
  elseif reply[1] == 2 then
    decide(key, d, 'refused', 'idempotency_key_reused', {})
  elseif reply[1] == 3 then
    decide(key, d, 'refused', 'rate_limited', {})
  else
    decide(key, d, 'refused', 'conversation_busy', {member('execution_id', reply[2])})
  end
end
