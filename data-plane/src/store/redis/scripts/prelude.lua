-- Shared by the WhatsApp scripts (message, status, end, join; see `conversations.rs`).
-- ARGV[1..5]: shard base, now, retention, index trim bound, placeholder token (for
-- diagnostics: templates arrive already split at it). Executions to start follow at
-- `first`: their count, then per execution role, id, workflow, trigger type, and meta and
-- context as templates.
local base, now, retention, trim = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
-- A template (see `Placeholder::template`) at ARGV[o], joined with the chosen values;
-- returns it and the offset after it.
local function assemble(o, id, status)
  local n = tonumber(ARGV[o])
  if n == 1 then return ARGV[o + 1], o + 2 end
  local parts = {}
  for i = 1, n do
    parts[#parts + 1] = ARGV[o + 2 * i - 1]
    if i < n then
      if ARGV[o + 2 * i] == 'i' then parts[#parts + 1] = id else parts[#parts + 1] = status end
    end
  end
  return table.concat(parts), o + 2 * n
end
-- True for one id in 16 (a random hex digit of a UUIDv7): expired entries of indexes are
-- trimmed that often rather than on every write.
local function sometimes(id)
  return string.sub(id, 33, 33) == '0'
end
local function skip(o)
  return o + 2 * tonumber(ARGV[o])
end
-- Offsets of the executions at ARGV[first], by role, and the offset after them.
local function roles_at(first)
  local roles = {}
  local o = first + 1
  for i = 1, tonumber(ARGV[first]) do
    roles[ARGV[o]] = o
    o = skip(skip(o + 4))
  end
  return roles, o
end
-- The active conversation of a customer of number `config`: by the pointer of `key` (the
-- phone number's digits, else the BSUID), else by that of `uid` (their BSUID, when known
-- beside the phone number). Returns its id (or false), its key, and `key`'s pointer.
local function find(config, key, uid)
  local pointer = base .. 'cn:' .. config .. ':' .. key
  local function active(cid)
    if cid and redis.call('HGET', base .. 'c:' .. cid, 'status') == 'active' then return cid end
    return false
  end
  local cid = active(redis.call('GET', pointer))
  if not cid and uid ~= '' and uid ~= key then
    cid = active(redis.call('GET', base .. 'cn:' .. config .. ':' .. uid))
  end
  return cid, cid and (base .. 'c:' .. cid), pointer
end
-- What an update tells of the customer of conversation `cid`: the pointers of both keys
-- (kept alive, or set when the other key found it); and, in a conversation found (not
-- `fresh`: `open` wrote them) by an update carrying a BSUID, the phone number, BSUID and
-- username it knows. An update without a BSUID finds only what its phone number keys,
-- which already knows that number.
local function identify(conv, cid, pointer, config, phone, uid, uname, fresh)
  redis.call('SET', pointer, cid, 'PX', retention)
  if uid == '' then return end
  redis.call('SET', base .. 'cn:' .. config .. ':' .. uid, cid, 'PX', retention)
  if fresh then return end
  local fields = {'uid', uid}
  if phone ~= '' then fields[#fields + 1] = 'phone'; fields[#fields + 1] = phone end
  if uname ~= '' then fields[#fields + 1] = 'uname'; fields[#fields + 1] = uname end
  redis.call('HSET', conv, unpack(fields))
end
-- The conversation fields naming a new conversation's customer beyond its phone: BSUID and
-- username when known, appended to `extra`.
local function customer_fields(extra, uid, uname)
  if uid ~= '' then extra[#extra + 1] = 'uid'; extra[#extra + 1] = uid end
  if uname ~= '' then extra[#extra + 1] = 'uname'; extra[#extra + 1] = uname end
  return extra
end
-- A new active conversation `cid`, written whole in one command (its customer's pointers
-- are `identify`'s); `who` is {project, config id, Meta phone_number_id, phone}, `extra`
-- more fields. Returns its key.
local function open(cid, list, who, extra)
  local conv = base .. 'c:' .. cid
  redis.call('HSET', conv, 'project', who[1], 'number', who[2], 'pnid', who[3], 'phone', who[4],
    'status', 'active', 'created', now, 'last', now, unpack(extra))
  if sometimes(cid) then
    redis.call('ZREMRANGEBYSCORE', list, '-inf', '(' .. (tonumber(now) - tonumber(retention)))
  end
  return conv
end
-- Activity in conversation `cid`: its expiry, the shard's active set and the project's list.
local function touch(conv, cid, list)
  redis.call('PEXPIRE', conv, retention)
  redis.call('ZADD', base .. 'ca', now, cid)
  redis.call('ZADD', list, now, cid)
  redis.call('PEXPIRE', list, retention)
end
local function create(o, id_json, status_json, project)
  local id, workflow = ARGV[o + 1], ARGV[o + 2]
  local meta, next = assemble(o + 4, id_json, status_json)
  local context = assemble(next, id_json, status_json)
  local record = base .. 'e:' .. id
  redis.call('HSET', record, 'status', 'pending', 'updated', now, 'meta', meta,
    'context', context)
  redis.call('PEXPIRE', record, retention)
  local index = base .. 'w:' .. workflow
  redis.call('ZADD', index, 0, id)
  if sometimes(id) then redis.call('ZREMRANGEBYLEX', index, '-', '(' .. trim) end
  redis.call('PEXPIRE', index, retention)
  redis.call('XADD', base .. 'dispatch', '*', 'id', id, 'project', project,
    'workflow', workflow, 'trigger_type', ARGV[o + 3])
  return id
end
