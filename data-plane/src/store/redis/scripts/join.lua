
-- An API-trigger execution that joins the conversation of (number, customer) (DESIGN §12),
-- with the admission checks of `create.lua`.
-- KEYS[1]: the idempotency key, KEYS[2]: the burst counter (each the record's key when
-- unused), KEYS[3]: the project's decisions. ARGV[6..]: project, config id, customer key (wa_id, else BSUID), phone (''
-- unknown), Meta phone_number_id, new conversation id, on_conflict (`end_existing` |
-- `fail`), request hash ('' without an Idempotency-Key), idempotency window ms, burst limit
-- (0: none), the customer's BSUID ('' unknown), the executions (roles `api`,
-- `created`), then the decision block.
-- Checks idempotency, then whether an intercepting execution holds the conversation (rules
-- (a) and (b) of `store/rules.rs`: handoff, pending, running, waiting), then the burst
-- limit; every check precedes the first write. Then the conversation (the active one, else
-- a new one), the execution, the conversation's created execution, and the holder ended as
-- `superseded`, with an event on both.
-- Returns {0, burst remaining or -1, conversation id, created 0/1, superseded id or '',
-- created execution or ''}, {1, tracking id} replayed, {2} key reused, {3} rate limited,
-- {4, holder} busy.
local project, config, customer = ARGV[6], ARGV[7], ARGV[8]
local request = ARGV[13]
local roles, after = roles_at(17)
local d = decision_at(after)
local replayed = replay(KEYS[1], request)
if replayed then
  refuse(KEYS[3], d, replayed)
  return replayed
end
local uid = ARGV[16]
local cid, conv, pointer = find(config, customer, uid)
local holder = false
if cid then
  local current = redis.call('HGET', conv, 'exec')
  if current then
    local status = redis.call('HGET', base .. 'e:' .. current, 'status')
    if status == 'handoff' or status == 'pending' or status == 'running' or
        status == 'waiting' then
      holder = current
    end
  end
end
if holder and ARGV[12] == 'fail' then
  refuse(KEYS[3], d, {4, holder})
  return {4, holder}
end
local remaining = burst(KEYS[2], ARGV[15])
if not remaining then
  refuse(KEYS[3], d, {3})
  return {3}
end
local id = ARGV[roles.api + 1]
local list = base .. 'cl:' .. project
local created = 0
if cid then
  redis.call('HSET', conv, 'last', now, 'exec', id)
else
  cid = ARGV[11]
  created = 1
  conv = open(cid, list, {project, config, ARGV[10], ARGV[9]},
    customer_fields({'exec', id}, uid, ''))
end
identify(conv, cid, pointer, config, ARGV[9], uid, '', created == 1)
touch(conv, cid, list)
local id_json, status_json = '"' .. cid .. '"', '"active"'
create(roles.api, id_json, status_json, project)
local started = ''
if created == 1 and roles.created then
  started = create(roles.created, id_json, status_json, project)
end
if holder then
  -- The holder ends (every status that holds may become `ended`); its runner hears of it
  -- on its claim stream, as of a message.
  local record = base .. 'e:' .. holder
  local held = redis.call('HMGET', record, 'status', 'runner')
  redis.call('HSET', record, 'status', 'ended', 'updated', now)
  local superseded = '{"at":' .. now .. ',"by":"' .. id .. '","reason":"superseded",' ..
    '"type":"superseded"}'
  local events = base .. 'ev:' .. holder
  redis.call('RPUSH', events, '{"at":' .. now .. ',"from":"' .. held[1] ..
    '","to":"ended","type":"status_changed"}', superseded)
  local ttl = redis.call('PTTL', record)
  if ttl > 0 then redis.call('PEXPIRE', events, ttl) end
  if held[2] then
    redis.call('XADD', base .. 'r:' .. held[2], 'MAXLEN', '~', 10000, '*', 'id', holder,
      'message', superseded)
  end
  local mine = base .. 'ev:' .. id
  redis.call('RPUSH', mine, '{"at":' .. now .. ',"execution":"' .. holder ..
    '","type":"supersedes"}')
  redis.call('PEXPIRE', mine, retention)
end
if request ~= '' then
  redis.call('SET', KEYS[1], request .. ' ' .. id, 'PX', ARGV[14])
end
local extra = {member('conversation_id', cid), d.fields.api}
if holder then extra[3] = '"superseded":"' .. holder .. '"' end
decide(KEYS[3], d, 'started', nil, extra, created == 1 and {'created'} or {})
return {0, remaining, cid, created, holder or '', started}
