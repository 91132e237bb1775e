-- Fails an execution that has waited too long (DESIGN §12 `--waiting-timeout`; see
-- `executions.rs`). The shard's waiting set names candidates; the record decides: it must
-- still be `waiting`, and since `cutoff` or earlier (`updated` is the time of its last
-- status change). Every node sweeps, and the check and the change are one step, so an
-- execution fails once.
-- KEYS: record, events, the shard's waiting set. ARGV: tracking id, cutoff, now, the
-- `waiting_timeout` event, shard base. Returns 1 when it failed the execution, else 0.
local held = redis.call('HMGET', KEYS[1], 'status', 'updated', 'runner')
if held[1] ~= 'waiting' then
  redis.call('ZREM', KEYS[3], ARGV[1])
  return 0
end
if tonumber(held[2]) > tonumber(ARGV[2]) then
  redis.call('ZADD', KEYS[3], held[2], ARGV[1])
  return 0
end
local now = ARGV[3]
redis.call('HSET', KEYS[1], 'status', 'failed', 'updated', now)
redis.call('RPUSH', KEYS[2], '{"at":' .. now ..
  ',"from":"waiting","to":"failed","type":"status_changed"}', ARGV[4])
local ttl = redis.call('PTTL', KEYS[1])
if ttl > 0 then redis.call('PEXPIRE', KEYS[2], ttl) end
redis.call('ZREM', KEYS[3], ARGV[1])
if held[3] then
  redis.call('XADD', ARGV[5] .. 'r:' .. held[3], 'MAXLEN', '~', 10000, '*', 'id', ARGV[1],
    'message', ARGV[4])
end
return 1
