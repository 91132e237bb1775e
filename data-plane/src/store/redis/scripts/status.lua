
-- A status of an outbound message (DESIGN §7 statuses).
-- KEYS[1]: the message's status hash, KEYS[2]: the project's decisions. ARGV[6..]:
-- project, config id, recipient key (wa_id, else BSUID), status, its rank, Meta
-- phone_number_id, seen window, the recipient's BSUID ('' unknown), the executions (role
-- `status`), then the decision block. A status seen before is skipped (its first
-- redelivery recorded as a duplicate); a lower one is recorded as seen but does not move
-- the message back.
local seen = 'seen:' .. ARGV[9]
local roles, after = roles_at(14)
if redis.call('HEXISTS', KEYS[1], seen) == 1 then
  if redis.call('HINCRBY', KEYS[1], 'dup:' .. ARGV[9], 1) == 1 then
    decide(KEYS[2], decision_at(after), 'duplicate', 'already_processed', {})
  end
  return {0}
end
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
local started = ''
if roles.status then started = create(roles.status, id_json, status_json, ARGV[6]) end
redis.call('HSET', KEYS[1], seen, now)
redis.call('PEXPIRE', KEYS[1], ARGV[12])
local d = decision_at(after)
local extra = {}
if id_json ~= 'null' then extra[1] = member('conversation_id', cid) end
if started ~= '' then
  extra[#extra + 1] = d.fields.status
  decide(KEYS[2], d, 'started', nil, extra, {'status'})
else
  decide(KEYS[2], d, 'ignored', 'no_trigger', extra)
end
return {1, status, started}
