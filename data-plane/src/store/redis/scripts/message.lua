
-- An inbound message (DESIGN §7 steps 1-4, in order; the seen mark is written last).
-- KEYS[1]: the message's seen mark (its conversation id, '+' appended once a redelivery
-- was recorded), KEYS[2]: the project's decisions. ARGV[6..]: project, config id, customer
-- key (wa_id, else BSUID), phone ('' unknown), Meta phone_number_id, new conversation id,
-- last message, last user input, delivery event, seen window, the inbox entry (template),
-- the customer's BSUID and username ('' unknown), the executions (roles `created`,
-- `received`, `trigger`), then the decision block. Step 4 follows the rules of
-- `store/rules.rs`, case for case; the decision says which matched.
local project = ARGV[6]
local list = base .. 'cl:' .. project
local who = skip(16)
local uid, uname = ARGV[who], ARGV[who + 1]
local roles, after = roles_at(who + 2)
local seen = redis.call('GET', KEYS[1])
if seen then
  if #seen == 36 then
    redis.call('APPEND', KEYS[1], '+')
    decide(KEYS[2], decision_at(after), 'duplicate', 'already_processed',
      {member('conversation_id', seen)})
  end
  return {0}
end
local cid, conv, pointer = find(ARGV[7], ARGV[8], uid)
local created = 0
if cid then
  redis.call('HSET', conv, 'last', now, 'lm', ARGV[12])
else
  cid = ARGV[11]
  created = 1
  local extra = {'lm', ARGV[12]}
  if roles.trigger then
    -- Nothing runs in a new conversation: the message trigger's execution will be its own.
    extra[#extra + 1] = 'exec'
    extra[#extra + 1] = ARGV[roles.trigger + 1]
  end
  conv = open(cid, list, {project, ARGV[7], ARGV[10], ARGV[9]},
    customer_fields(extra, uid, uname))
end
identify(conv, cid, pointer, ARGV[7], ARGV[9], uid, uname, created == 1)
touch(conv, cid, list)
local id_json, status_json = '"' .. cid .. '"', '"active"'
local started = {}
if created == 1 and roles.created then
  table.insert(started, create(roles.created, id_json, status_json, project))
end
if roles.received then
  table.insert(started, create(roles.received, id_json, status_json, project))
end
-- Step 4, the rules of `store/rules.rs`, first match wins. A conversation just created has
-- no execution yet.
local route, target = 'inbox', ''
local current = created == 0 and redis.call('HGET', conv, 'exec')
if current then
  local record = base .. 'e:' .. current
  local held = redis.call('HMGET', record, 'status', 'runner')
  local status = held[1]
  if status == 'handoff' then
    -- (a) a human has the conversation.
    route, target = 'handoff', current
  elseif status == 'pending' or status == 'running' or status == 'waiting' then
    -- (b) delivered to the conversation's execution.
    route, target = 'delivered', current
    redis.call('HSET', record, 'input', ARGV[13])
    local events = base .. 'ev:' .. current
    redis.call('RPUSH', events, ARGV[14])
    local ttl = redis.call('PTTL', record)
    if ttl > 0 then redis.call('PEXPIRE', events, ttl) end
    if held[2] then
      -- Claimed: the runner that holds it gets the message too.
      redis.call('XADD', base .. 'r:' .. held[2], 'MAXLEN', '~', 10000, '*', 'id', current,
        'message', ARGV[14])
    end
  end
end
if route == 'inbox' then
  if roles.trigger then
    -- (c) the number's message trigger starts a new execution.
    target = create(roles.trigger, id_json, status_json, project)
    table.insert(started, target)
    route = 'started'
    if created == 0 then redis.call('HSET', conv, 'exec', target) end
  else
    -- (d) the agent inbox.
    redis.call('XADD', base .. 'inbox', '*', 'conversation', cid, 'project', project,
      'message', (assemble(16, id_json, status_json)))
  end
end
redis.call('SET', KEYS[1], cid, 'PX', ARGV[15])
local d = decision_at(after)
local extra, reason = {member('conversation_id', cid)}, nil
if route == 'started' then
  extra[2] = d.fields.trigger
elseif route == 'inbox' then
  reason = 'no_trigger'
else
  reason = route == 'handoff' and 'handoff' or 'execution_active'
  extra[2] = member('execution_id', target)
end
decide(KEYS[2], d, route, reason, extra, created == 1 and {'created', 'received'} or {'received'})
return {1, cid, created, route, target, unpack(started)}
