-- ratewise's shared store (docs/design.md §9): one script, dispatched on ARGV[1] ('reg', 'acq',
-- 'app', 'rel'). ARGV[2] is the time, ARGV[3] the GC TTL, ARGV[4] the epoch the caller registered in.
--
-- KEYS[1] is the engine's hash tag `{prefix}`; every key the script touches starts with it, so
-- all of them live in one Redis Cluster slot:
--   {prefix}:b:<quota key>   a bucket: id (identity), cmp (compatibility), cap (in force),
--                            lrn (learned limit, 0 = none), lvl, at   (docs/design.md §3, exact integers),
--                            ex (the GC period in which its TTL was last set)
--   {prefix}:p:<provider>    hold (until ms), fail, til (circuit half-open time, '' = closed), k,
--                            probe (the probe permit's id, '' = none)
--   {prefix}:b:<quota key>:f a rate bucket's reservations in flight (docs/design.md §7): a
--                            sorted set of '<permit id>|<units>' by grant ms
--   {prefix}:permits         permit id -> '<probe 0|1>\t<provider>[\t<concurrency bucket key>
--                            | ~<units>~<in-flight set key>]...'
--   {prefix}:deadlines       sorted set of permit ids by deadline
--   {prefix}:instances       counter handing out engine instance numbers
--   {prefix}:epoch           the server µs at which the state was first registered; never
--                            expires, so a caller whose epoch differs knows Redis lost the state
--   {prefix}:gone            permit id -> ms: acquires released before they ran (their reply was
--                            lost); such an acquire reserves nothing when it runs
--
-- Every part of a key after the tag (a quota key, a provider name) and the prefix itself come
-- escaped by the engine (`%`, braces, `:` and control characters as %XX), so keys cannot collide
-- and no part can split the tab-joined permit records.
--
-- Time is ARGV[2], the engine's clock (the manual clock, or the Redis server's clock
-- extrapolated by the engine; 'server' before the engine has read it); every reply carries the server's own ms for that extrapolation.
-- Every value is an integer below 2^53, exact in Lua's doubles; divisions that must be exact go
-- through math.fmod (exact in IEEE arithmetic), never through '/' and floor.
-- A disagreeing bucket identity is checked before anything is written (Lua scripts are not
-- rolled back on error), and answered with {'conflict', key}.

local anchor = KEYS[1]
local op = ARGV[1]
local gc = tonumber(ARGV[3])
local epoch = ARGV[4]
local pos = 4
local function str() pos = pos + 1; return ARGV[pos] end
local function num() pos = pos + 1; return tonumber(ARGV[pos]) end

local PERMITS = anchor .. ':permits'
local DEADLINES = anchor .. ':deadlines'
local GONE = anchor .. ':gone'
-- TTLs (garbage collection only) are refreshed once per eighth of their length, not per call.
local gc_period = 0

local function server_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- 'server' when the engine has not read the server's clock yet (its first call)
local now = (ARGV[2] == 'server') and server_ms() or tonumber(ARGV[2])

-- exact floor(x / w) for integers x and w > 0
local function idiv(x, w)
  local r = math.fmod(x, w)
  if r < 0 then r = r + w end
  return (x - r) / w
end

local function gcd(a, b)
  while b ~= 0 do a, b = b, math.fmod(a, b) end
  return a
end

local function setscale(b, cap)
  b.cap = cap
  if b.kind == 'b' then
    local g = gcd(cap, b.w)
    b.s = b.w / g
    b.refill = cap / g
  else
    b.s = 1
    b.refill = 0
  end
end

local function fresh(b)
  b.lrn = 0
  setscale(b, b.conf)
  if b.kind == 'b' then b.lvl = b.cap * b.s; b.at = now
  elseif b.kind == 'f' then b.lvl = b.cap; b.at = idiv(now - b.off, b.w)
  else b.lvl = 0; b.at = now end
  b.dirty = true
  b.whole = true
end

-- A bucket spec: key, identity, compatibility, kind ('b' token bucket, 'f' fixed window,
-- 'c' concurrency), configured limit, window ms, offset ms.
local function spec()
  local b = {}
  b.key = str(); b.id = str(); b.cmp = str(); b.kind = str()
  b.conf = num(); b.w = num(); b.off = num()
  b.rk = anchor .. ':b:' .. b.key
  return b
end

-- Reads a bucket's state; false on an identity conflict (unless `adopt`, an upsert).
local function load(b, adopt)
  local h = redis.call('HMGET', b.rk, 'id', 'cmp', 'cap', 'lrn', 'lvl', 'at', 'ex')
  if not h[1] then
    fresh(b)
    return true
  end
  local cap, lrn = tonumber(h[3]), tonumber(h[4])
  b.lvl = tonumber(h[5]); b.at = tonumber(h[6]); b.ex = tonumber(h[7] or -1)
  if h[1] == b.id then
    b.lrn = lrn
    setscale(b, cap)
    return true
  end
  if not adopt then return false end
  if h[2] == b.cmp then
    -- A changed limit (or settle, offset, count_cached): keep the units left, capped; a learned
    -- limit below the new configured one stays (docs/design.md §2, §12).
    b.lrn = lrn
    setscale(b, cap)
    b.setcap = (lrn > 0 and lrn < b.conf) and lrn or b.conf
    if b.setcap == b.conf then b.lrn = 0 end
  else
    fresh(b)
  end
  b.dirty = true
  b.whole = true
  return true
end

local function sync(b)
  if b.kind == 'b' then
    if now > b.at then
      local full = b.cap * b.s
      if b.lvl < full then b.lvl = math.min(full, b.lvl + (now - b.at) * b.refill) end
      b.at = now
      b.dirty = true
    end
  elseif b.kind == 'f' then
    local k = idiv(now - b.off, b.w)
    if k > b.at then
      if b.lvl >= 0 then b.lvl = b.cap else b.lvl = math.min(b.cap, b.lvl + (k - b.at) * b.cap) end
      b.at = k
      b.dirty = true
    end
  end
end

-- Changes the capacity in force: the level converted to the new scale rounding toward -inf,
-- then capped (docs/design.md §12). floor(lvl * s2 / s1) is computed as q*s2 + floor(r*s2 / s1).
local function setcap(b, cap)
  if cap == b.cap then return end
  if b.kind == 'b' then
    local s1 = b.s
    setscale(b, cap)
    local r = math.fmod(b.lvl, s1)
    if r < 0 then r = r + s1 end
    local q = (b.lvl - r) / s1
    local lvl = q * b.s + idiv(r * b.s, s1)
    b.lvl = math.min(lvl, b.cap * b.s)
  elseif b.kind == 'f' then
    setscale(b, cap)
    b.lvl = math.min(b.lvl, cap)
  else
    setscale(b, cap)
  end
  b.dirty = true
  b.whole = true
end

-- Lane reserve floor(ppm * C / 10^6), exact for C up to 2^53.
local function reserve(b, ppm)
  if ppm == 0 then return 0 end
  local r = math.fmod(b.cap, 1000000)
  return (b.cap - r) / 1000000 * ppm + idiv(r * ppm, 1000000)
end

local function fits(b, n, ppm)
  local r = reserve(b, ppm)
  if b.kind == 'c' then return b.lvl + 1 + r <= b.cap end
  local need = n + r
  if need > b.cap then return false end
  if b.kind == 'b' then return b.lvl >= need * b.s end
  return b.lvl >= need
end

local function charge(b, n)
  if n <= 0 then return end
  if b.kind == 'c' then b.lvl = b.lvl + 1
  elseif b.kind == 'b' then b.lvl = b.lvl - n * b.s
  else b.lvl = b.lvl - n end
  b.dirty = true
end

local function refund(b, n)
  if n <= 0 then return end
  if b.kind == 'c' then b.lvl = math.max(0, b.lvl - 1)
  elseif b.kind == 'b' then b.lvl = math.min(b.cap * b.s, b.lvl + n * b.s)
  else b.lvl = math.min(b.cap, b.lvl + n) end
  b.dirty = true
end

-- Writes what changed (the level and its time, or everything after a creation or a capacity
-- change) and refreshes the TTL once per GC period; true when it did.
local function save(b)
  if not b.dirty then return false end
  local refresh = b.ex ~= gc_period
  if b.whole or refresh then
    redis.call('HSET', b.rk, 'id', b.id, 'cmp', b.cmp, 'cap', b.cap, 'lrn', b.lrn, 'lvl', b.lvl, 'at', b.at,
      'ex', gc_period)
  else
    redis.call('HSET', b.rk, 'lvl', b.lvl, 'at', b.at)
  end
  if refresh then redis.call('PEXPIRE', b.rk, gc) end
  return refresh
end

local function state(b, out)
  out[#out + 1] = b.cap; out[#out + 1] = b.lrn; out[#out + 1] = b.lvl; out[#out + 1] = b.at
end

-- Providers -------------------------------------------------------------------------------

local function provider(name)
  local p = { rk = anchor .. ':p:' .. name }
  local h = redis.call('HMGET', p.rk, 'hold', 'fail', 'til', 'k', 'probe')
  p.hold = h[1] and tonumber(h[1]) or false
  p.fail = tonumber(h[2] or 0)
  p.til = (h[3] and h[3] ~= '') and tonumber(h[3]) or false
  p.k = tonumber(h[4] or 0)
  p.probe = h[5] or ''
  return p
end

local function pstate(p, out)
  out[#out + 1] = p.hold and p.hold or ''
  out[#out + 1] = p.fail
  out[#out + 1] = p.til and p.til or ''
  out[#out + 1] = p.k
  out[#out + 1] = (p.probe ~= '') and 1 or 0
end

local function psave(p)
  redis.call('HSET', p.rk, 'hold', p.hold and p.hold or '', 'fail', p.fail, 'til', p.til and p.til or '',
    'k', p.k, 'probe', p.probe)
  redis.call('PEXPIRE', p.rk, gc)
end

local function circuit(p)
  if not p.til then return 'closed' end
  if now < p.til then return 'open' end
  return 'half'
end

-- Permits ---------------------------------------------------------------------------------

-- A permit record's fields, its reservations in flight removed; `slots` also frees its
-- concurrency slots.
local function unrecord(id, rec, slots)
  local fields = {}
  for f in string.gmatch(rec, '[^\t]+') do fields[#fields + 1] = f end
  for i = 3, #fields do
    local units, fk = string.match(fields[i], '^~(%d+)~(.+)$')
    if fk then
      redis.call('ZREM', fk, id .. '|' .. units)
    elseif slots then
      local lvl = tonumber(redis.call('HGET', fields[i], 'lvl') or 0)
      if lvl > 0 then redis.call('HSET', fields[i], 'lvl', lvl - 1) end
    end
  end
  return fields
end

-- Frees a permit's concurrency slots (and its probe slot); false when Redis does not know it.
local function free(id)
  local rec = redis.call('HGET', PERMITS, id)
  if rec then
    local fields = unrecord(id, rec, true)
    if fields[1] == '1' then
      local prk = anchor .. ':p:' .. fields[2]
      if redis.call('HGET', prk, 'probe') == id then redis.call('HSET', prk, 'probe', '') end
    end
    redis.call('HDEL', PERMITS, id)
  end
  redis.call('ZREM', DEADLINES, id)
  return rec ~= false
end

-- Frees every permit whose deadline has passed.
local function expire()
  local ids = redis.call('ZRANGEBYSCORE', DEADLINES, '-inf', now)
  for _, id in ipairs(ids) do free(id) end
end

-- Operations ------------------------------------------------------------------------------

-- A caller registered in another epoch has lost its state here (flushed, restarted empty).
if op ~= 'reg' and redis.call('GET', anchor .. ':epoch') ~= epoch then return { 'reset' } end

gc_period = idiv(now, math.max(1, idiv(gc, 8)))
expire()

if op == 'rel' then
  -- ARGV: permit id. Frees it if its acquire ran; else leaves a tombstone for it.
  local id = str()
  if not free(id) then
    redis.call('HSET', GONE, id, now)
    redis.call('PEXPIRE', GONE, gc)
  end
  return { 'ok', server_ms(), 0 }
end

if op == 'reg' then
  -- ARGV: mode ('new' | 'upsert'), bucket count, then per bucket: spec and 'fresh' | 'keep',
  -- provider count, then per provider: name and 'fresh' | 'keep'. Creates missing buckets,
  -- checks (new) or adopts (upsert) identities, starts afresh what this engine removed and
  -- re-added (docs/design.md §12: a re-added provider starts fresh); returns
  -- {'ok', server ms, instance, epoch, bucket states..., provider states...}.
  local adopt = str() == 'upsert'
  local nb = num()
  local bs = {}
  for i = 1, nb do
    local b = spec()
    if str() == 'fresh' then
      fresh(b)
    elseif not load(b, adopt) then
      return { 'conflict', b.key }
    end
    bs[i] = b
  end
  local ep = redis.call('GET', anchor .. ':epoch')
  if not ep then
    local t = redis.call('TIME')
    ep = t[1] .. string.format('%06d', tonumber(t[2]))
    redis.call('SET', anchor .. ':epoch', ep)
  end
  local out = { 'ok', server_ms(), redis.call('INCR', anchor .. ':instances'), ep }
  for _, b in ipairs(bs) do
    if b.setcap then setcap(b, b.setcap) end
    b.dirty = true
    save(b)
    state(b, out)
  end
  redis.call('PEXPIRE', PERMITS, gc)
  redis.call('PEXPIRE', DEADLINES, gc)
  local np = num()
  for _ = 1, np do
    local name = str()
    if str() == 'fresh' then redis.call('DEL', anchor .. ':p:' .. name) end
    pstate(provider(name), out)
  end
  return out
end

if op == 'acq' then
  -- ARGV: permit id, deadline, headroom ppm, candidate count, then per candidate: provider,
  -- bucket count, then per bucket: spec and units. Reserves the first candidate that is not
  -- held, not open, not half-open with a probe out, and fits every bucket. Returns {'ok',
  -- server ms, chosen index (0-based, -1 for none), then per candidate its provider state and
  -- its buckets' states before the charge}.
  local id = str()
  local deadline = num()
  local ppm = num()
  local nc = num()
  local cands = {}
  for i = 1, nc do
    local c = { name = str(), bs = {} }
    local nb = num()
    for j = 1, nb do
      local b = spec()
      b.n = num()
      if not load(b, false) then return { 'conflict', b.key } end
      c.bs[j] = b
    end
    c.p = provider(c.name)
    cands[i] = c
  end
  local out = { 'ok', server_ms(), -1 }
  local chosen = nil
  -- Released before it ran (its reply was lost to the caller): reserve nothing.
  local gone = redis.call('HEXISTS', GONE, id) == 1
  if gone then chosen = false end
  -- Run once already (the transport sent it again after a connection broke before the
  -- reply): answer the same choice and charge nothing more.
  local again = not gone and redis.call('HGET', PERMITS, id)
  if again then
    local name = string.match(again, '^[01]\t([^\t]*)')
    chosen = false
    for i, c in ipairs(cands) do
      if c.name == name then again = i end
    end
  end
  for i, c in ipairs(cands) do
    for _, b in ipairs(c.bs) do sync(b) end
    if chosen == nil then
      local cs = circuit(c.p)
      local ok = not (c.p.hold and c.p.hold > now) and cs ~= 'open' and not (cs == 'half' and c.p.probe ~= '')
      if ok then
        for _, b in ipairs(c.bs) do
          -- A caller whose clock is still in a fixed window another engine's clock has left
          -- charges nothing there: admitted, it would count in this window on the store's
          -- sequence of windows but in the last one on its own clock.
          if not fits(b, b.n, ppm) or (b.kind == 'f' and idiv(now - b.off, b.w) < b.at) then
            ok = false
            break
          end
        end
      end
      if ok then
        chosen = i
        c.half = (cs == 'half')
      end
    end
    pstate(c.p, out)
    for _, b in ipairs(c.bs) do state(b, out) end
  end
  if gone then redis.call('HDEL', GONE, id) end
  if type(again) == 'number' then out[3] = again - 1 end
  if chosen then
    out[3] = chosen - 1
    local c = cands[chosen]
    local rec = { '0', c.name }
    local refreshed = false
    for _, b in ipairs(c.bs) do
      charge(b, b.n)
      if save(b) then refreshed = true end
      if b.kind == 'c' then
        rec[#rec + 1] = b.rk
      elseif b.n > 0 then
        local fk = b.rk .. ':f'
        redis.call('ZADD', fk, now, id .. '|' .. b.n)
        redis.call('PEXPIRE', fk, gc)
        rec[#rec + 1] = '~' .. b.n .. '~' .. fk
      end
    end
    if c.half then
      c.p.probe = id
      psave(c.p)
      rec[1] = '1'
    end
    redis.call('HSET', PERMITS, id, table.concat(rec, '\t'))
    redis.call('ZADD', DEADLINES, deadline, id)
    if refreshed or #c.bs == 0 then
      redis.call('PEXPIRE', PERMITS, gc)
      redis.call('PEXPIRE', DEADLINES, gc)
    end
  end
  return out
end

if op == 'app' then
  -- ARGV: permit id ('' for none), provider, hold until ('' for none), signal ('s' success,
  -- 'f' failure, 'c' client error, 'h' hold only, 'n' nothing), reporter ('p' probe, 'm' permit,
  -- 'o' observe), the calibration's reporting point ('' for none), cooldown_after, duration count, durations (by re-open count k; the last
  -- repeats), bucket count, then per bucket: spec, delta (> 0 charge, < 0 refund), learned
  -- capacity (0 = none, else the capacity to adopt: the configured one clears it), remaining
  -- (-1 = none). Settles, then holds, then the circuit, then calibration, as `complete` does.
  -- Returns {'ok', server ms, known (1 when the permit was found), provider state, bucket
  -- states}.
  local id = str()
  local name = str()
  local hold = str()
  local sig = str()
  local rep = str()
  local point = str()
  local after = num()
  local nd = num()
  local durs = {}
  for i = 1, nd do durs[i] = num() end
  local nb = num()
  local bs = {}
  for i = 1, nb do
    local b = spec()
    b.delta = num(); b.learn = num(); b.rem = num()
    if not load(b, false) then return { 'conflict', b.key } end
    bs[i] = b
  end
  local known = 0
  local probe_of_permit = false
  if id ~= '' then
    local rec = redis.call('HGET', PERMITS, id)
    if rec then
      known = 1
      probe_of_permit = string.sub(rec, 1, 1) == '1'
      unrecord(id, rec, false)
      redis.call('HDEL', PERMITS, id)
      redis.call('ZREM', DEADLINES, id)
    end
  end
  for _, b in ipairs(bs) do
    sync(b)
    -- A permit Redis no longer knows (it expired there) has had its slot freed already.
    if not (b.kind == 'c' and id ~= '' and known == 0) then
      if b.delta > 0 then charge(b, b.delta) elseif b.delta < 0 then refund(b, -b.delta) end
    end
  end
  local p = provider(name)
  local changed = false
  if hold ~= '' then
    local h = tonumber(hold)
    if not p.hold or h > p.hold then p.hold = h; changed = true end
  end
  local cs = circuit(p)
  if sig ~= 'n' and cs ~= 'open' then
    changed = true
    local hold_only = sig == 'h'
    if sig == 'f' then p.fail = p.fail + 1 elseif sig == 's' or sig == 'c' then p.fail = 0 end
    if cs == 'half' then
      local decides = (rep == 'p' and probe_of_permit) or (rep == 'o' and p.probe == '')
      if decides and not hold_only then
        if sig == 's' then
          p.til = false; p.k = 0; p.fail = 0
        elseif sig == 'f' then
          p.k = p.k + 1
          p.til = now + durs[math.min(p.k + 1, nd)]
        end
      end
    elseif p.fail >= after then
      p.k = 0
      p.til = now + durs[1]
    end
  end
  if probe_of_permit and p.probe == id then
    p.probe = ''
    changed = true
  end
  if changed then psave(p) end
  for _, b in ipairs(bs) do
    if b.learn > 0 then
      if b.learn >= b.conf then b.lrn = 0; setcap(b, b.conf) else b.lrn = b.learn; setcap(b, b.learn) end
      b.dirty = true
    end
    if b.rem >= 0 and b.kind ~= 'c' then
      -- Less what permits granted at or after the reporting point reserve (the provider has
      -- not seen them yet): possibly negative, a debt.
      local r = b.rem
      if point ~= '' then
        for _, m in ipairs(redis.call('ZRANGEBYSCORE', b.rk .. ':f', point, '+inf')) do
          r = r - tonumber(string.match(m, '|(%d+)$'))
        end
      end
      local m = (b.kind == 'b') and r * b.s or r
      if m < b.lvl then b.lvl = m; b.dirty = true end
    end
    if save(b) then
      -- The permits' TTLs follow the buckets' (a period's first save refreshes them all).
      redis.call('PEXPIRE', PERMITS, gc)
      redis.call('PEXPIRE', DEADLINES, gc)
    end
  end
  local out = { 'ok', server_ms(), known }
  pstate(p, out)
  for _, b in ipairs(bs) do state(b, out) end
  return out
end

return redis.error_reply('ratewise: unknown script operation ' .. tostring(op))
