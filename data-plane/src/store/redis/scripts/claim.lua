-- Delivers an execution to a runner (see `claims.rs`).
-- KEYS: record, events. ARGV: runner, now, visibility ms, "<group> <entry id>".
-- Takes the execution unless it is final, acked, or leased to a runner whose lease still
-- runs; a pending one becomes running. Returns {0} gone (ack the entry), {1} busy (leave
-- it), {2, attempt, record fields, events} taken.
local held = redis.call('HMGET', KEYS[1], 'status', 'lease', 'acked', 'attempts')
local status = held[1]
if not status or held[3] or status == 'ended' or status == 'failed' then return {0} end
local now = tonumber(ARGV[2])
if held[2] and tonumber(held[2]) > now then return {1} end
local attempt = tonumber(held[4] or '0') + 1
redis.call('HSET', KEYS[1], 'runner', ARGV[1], 'lease', now + tonumber(ARGV[3]),
  'attempts', attempt, 'claim', ARGV[4])
if status == 'pending' then
  redis.call('HSET', KEYS[1], 'status', 'running', 'updated', ARGV[2])
  redis.call('RPUSH', KEYS[2], '{"at":' .. ARGV[2] ..
    ',"from":"pending","to":"running","type":"status_changed"}')
end
redis.call('RPUSH', KEYS[2], '{"at":' .. ARGV[2] .. ',"attempt":' .. attempt ..
  ',"runner":"' .. ARGV[1] .. '","type":"claimed"}')
local ttl = redis.call('PTTL', KEYS[1])
if ttl > 0 then redis.call('PEXPIRE', KEYS[2], ttl) end
return {2, attempt, redis.call('HGETALL', KEYS[1]), redis.call('LRANGE', KEYS[2], 0, -1)}
