
-- Ends a conversation, once: whoever comes second finds it ended.
-- KEYS[1]: the conversation. ARGV[6..]: its id, the last activity the caller saw ('' for
-- any), reason, then the executions (role `ended`).
local held = redis.call('HMGET', KEYS[1], 'status', 'last', 'project')
if not held[1] then
  redis.call('ZREM', base .. 'ca', ARGV[6])
  return {0}
end
if held[1] ~= 'active' then
  redis.call('ZREM', base .. 'ca', ARGV[6])
  return {1}
end
if ARGV[7] ~= '' and held[2] ~= ARGV[7] then return {2} end
redis.call('HSET', KEYS[1], 'status', 'ended', 'ended', now, 'reason', ARGV[8])
redis.call('ZREM', base .. 'ca', ARGV[6])
local roles = roles_at(9)
local started = ''
if roles.ended then
  started = create(roles.ended, '"' .. ARGV[6] .. '"', '"ended"', held[3])
end
return {3, started}
