-- GCRA (generic cell rate algorithm) for RPM and TPM limits, one atomic call per request.
--
-- Each limited (scope, kind) keeps one number in Redis: its theoretical arrival time
-- (TAT, microseconds on the Redis clock, so every replica shares one clock). A request
-- of cost c against a limit L per period P advances the TAT by c * P / L; it is admitted
-- while the advanced TAT stays within one period of now, so a quiet scope allows a burst
-- of the whole limit and then one unit every P / L. RPM costs 1, TPM costs the tokens.
--
-- ARGV[1] = "reserve"
--   KEYS    for each scope: its RPM key, then its TPM key
--   ARGV[2] tokens reserved (the request's estimate), ARGV[3] period (microseconds)
--   ARGV[3 + i] the limit of KEYS[i] (0: no limit of that kind)
--   All or nothing: every limit admits the request and every TAT advances, or none
--   does. Returns {1} or {0, index of the refusing key, microseconds until it admits}
--   (the longest wait when several refuse).
--   A request larger than a whole period's allowance is admitted once the allowance is
--   untouched and owes its excess afterwards; otherwise it could never pass.
--
-- ARGV[1] = "settle"
--   KEYS    TPM keys; ARGV[2] tokens used minus tokens reserved (negative: a refund);
--   ARGV[3] period; ARGV[3 + i] the limit of KEYS[i]. A refund never takes a TAT below
--   now: unused allowance is not banked beyond a full period.

local now_parts = redis.call('TIME')
local now = tonumber(now_parts[1]) * 1000000 + tonumber(now_parts[2])
local mode = ARGV[1]
local amount = tonumber(ARGV[2])
local period = tonumber(ARGV[3])

local function tat_of(key)
  local stored = tonumber(redis.call('GET', key))
  if stored == nil or stored < now then
    return now
  end
  return stored
end

local function store(key, tat)
  if tat <= now then
    redis.call('DEL', key)
  else
    -- %.17g keeps the double exact: the default conversion keeps 14 digits, which at
    -- this magnitude loses microseconds and, summed over a burst, an admission.
    redis.call('SET', key, string.format('%.17g', tat), 'PX', math.ceil((tat - now) / 1000) + 1000)
  end
end

if mode == 'reserve' then
  local updates = {}
  local refused, longest = 0, 0
  for i = 1, #KEYS do
    local limit = tonumber(ARGV[3 + i])
    local cost = 1
    if i % 2 == 0 then
      cost = amount
    end
    if limit > 0 and cost > 0 then
      local interval = period / limit
      local tat = tat_of(KEYS[i])
      local wait = tat + math.min(cost, limit) * interval - period - now
      -- Half an interval of slack absorbs floating-point drift over a burst: the
      -- request that exactly fills the allowance waits 0, the next one a whole interval.
      if wait > interval / 2 then
        if refused == 0 or wait > longest then
          refused, longest = i, wait
        end
      else
        updates[#updates + 1] = { KEYS[i], tat + cost * interval }
      end
    end
  end
  if refused > 0 then
    return { 0, refused, math.ceil(longest) }
  end
  for _, update in ipairs(updates) do
    store(update[1], update[2])
  end
  return { 1 }
end

if mode == 'settle' then
  if amount ~= 0 then
    for i = 1, #KEYS do
      local limit = tonumber(ARGV[3 + i])
      if limit > 0 then
        store(KEYS[i], tat_of(KEYS[i]) + amount * period / limit)
      end
    end
  end
  return 1
end

return redis.error_reply('gcra: unknown mode ' .. tostring(mode))
