
-- An inbound message (DESIGN §7 steps 1-4, in order; the seen mark is written last).
-- KEYS[1]: the message's seen mark. ARGV[6..]: project, config id, customer key (wa_id,
-- else BSUID), phone ('' unknown), Meta phone_number_id, new conversation id, last
-- message, last user input, delivery event, seen window, the inbox entry (template), the
-- customer's BSUID and username ('' unknown), then the executions (roles `created`,
-- `received`, `trigger`). Step 4 follows the rules of `store/rules.rs`, case for case.
local project = ARGV[6]
local list = base .. 'cl:' .. project
if redis.call('EXISTS', KEYS[1]) == 1 then return {0} end
local who = skip(16)
local uid, uname = ARGV[who], ARGV[who + 1]
local roles = roles_at(who + 2)
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
return {1, cid, created, route, target, unpack(started)}
