
-- A status of an outbound message (DESIGN §7 statuses).
-- KEYS[1]: the message's status hash. ARGV[6..]: project, config id, recipient key
-- (wa_id, else BSUID), status, its rank, Meta phone_number_id, seen window, the
-- recipient's BSUID ('' unknown), then the executions (role `status`). A status seen before is skipped; a lower one is recorded as seen but does not
-- move the message back.
local seen = 'seen:' .. ARGV[9]
if redis.call('HEXISTS', KEYS[1], seen) == 1 then return {0} end
local held = redis.call('HMGET', KEYS[1], 'status', 'rank')
local status = held[1]
if not held[2] or tonumber(ARGV[10]) > tonumber(held[2]) then
  status = ARGV[9]
  redis.call('HSET', KEYS[1], 'status', status, 'rank', ARGV[10], 'updated', now)
end
redis.call('HSET', KEYS[1], 'project', ARGV[6], 'recipient', ARGV[8], 'pnid', ARGV[11])
local id_json, status_json = 'null', 'null'
local cid = redis.call('GET', base .. 'cn:' .. ARGV[7] .. ':' .. ARGV[8])
if not cid and ARGV[13] ~= '' then
  cid = redis.call('GET', base .. 'cn:' .. ARGV[7] .. ':' .. ARGV[13])
end
if cid then
  local cstatus = redis.call('HGET', base .. 'c:' .. cid, 'status')
  if cstatus then id_json, status_json = '"' .. cid .. '"', '"' .. cstatus .. '"' end
end
local roles = roles_at(14)
local started = ''
if roles.status then started = create(roles.status, id_json, status_json, ARGV[6]) end
redis.call('HSET', KEYS[1], seen, now)
redis.call('PEXPIRE', KEYS[1], ARGV[12])
return {1, status, started}
