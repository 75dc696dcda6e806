//! What the Redis store runs in Redis: each change one Lua script, so the
//! merge (read, compare, write) and its publication are one atomic step
//! that no other replica can interleave with; and the change messages.
//!
//! Times are kept as the decimal text the gateway wrote and compared with
//! `tonumber` (exact below 2^53: seconds and Apple's milliseconds are far
//! below). Hash values that expire begin with their `until`, so one sweep
//! reads them all alike.
//!
//! Every key whose entries expire also gets a Redis TTL from the script
//! that writes it ([`outlive!`]): the key outlives its longest entry (by
//! [`TTL_MARGIN`]) and then disappears by itself, even when no
//! gateway is left to sweep. Expiry by entry (score or `until`) and the
//! sweep stay: a key holds many entries, and the gateways judge by their
//! own clock.

use std::time::Duration;

use super::super::{Change, EmailStatus, SubRevocation};

/// How much longer than its longest entry a key lives in Redis (its TTL,
/// set by the script that writes it). The gateways judge expiry by their
/// own clocks, which NTP keeps within milliseconds of each other: ten
/// seconds covers that many times over, and is short enough that keys
/// left behind go soon.
pub const TTL_MARGIN: Duration = Duration::from_secs(10);

/// This gateway's clock in milliseconds, for the TTLs the scripts set
/// (relative to it, so Redis's clock does not matter).
pub(super) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// `now (ms)`, `TTL margin (ms)`: the arguments every script that sets a
/// TTL ends with.
pub(super) fn ttl_args() -> [Vec<u8>; 2] {
    [
        now_ms().to_string().into_bytes(),
        TTL_MARGIN.as_millis().to_string().into_bytes(),
    ]
}

/// A Lua function, `outlive(key, till, now_ms, margin_ms)`: lengthens
/// `key`'s TTL so it lives at least until `till` (seconds, the gateway's
/// clock) plus the margin, as milliseconds from `now_ms` (the writer's
/// clock: relative, so Redis's own clock does not matter). Never shortens
/// it. A key with no TTL yet is one just made, or one written by a gateway
/// from before TTLs: then its longest entry is looked up once (a sorted
/// set's highest score, a hash's highest leading `until`), so no older
/// entry is cut short. An `until` past any TTL Redis can hold keeps the
/// key forever.
macro_rules! outlive {
    () => {
        r"
local function outlive(key, till, now_ms, margin_ms)
  local ttl = redis.call('PTTL', key)
  local u = tonumber(till)
  if ttl == -1 then
    if redis.call('TYPE', key).ok == 'zset' then
      local top = redis.call('ZRANGE', key, -1, -1, 'WITHSCORES')
      if top[2] and tonumber(top[2]) > u then u = tonumber(top[2]) end
    else
      local all = redis.call('HVALS', key)
      for i = 1, #all do
        local v = tonumber(string.match(all[i], '^(%d+) '))
        if v and v > u then u = v end
      end
    end
  end
  local want = math.max(u * 1000 - tonumber(now_ms), 0) + tonumber(margin_ms)
  if want > 9e15 then
    if ttl >= 0 then redis.call('PERSIST', key) end
  elseif ttl < 0 or want > ttl then
    redis.call('PEXPIRE', key, string.format('%.0f', want))
  end
end
"
    };
}

/// `KEYS[1]` revoked sessions (a sorted set: id by expiry), `KEYS[2]` the
/// change channel; `ARGV` id, expiry, now (ms), TTL margin (ms). The first
/// entry stands.
pub const REVOKE_SESSION: &str = concat!(
    outlive!(),
    r"
if redis.call('ZADD', KEYS[1], 'NX', ARGV[2], ARGV[1]) == 1 then
  outlive(KEYS[1], ARGV[2], ARGV[3], ARGV[4])
  redis.call('PUBLISH', KEYS[2], 'session ' .. ARGV[2] .. ' 0 ' .. ARGV[1])
  return 1
end
return 0"
);

/// `KEYS[1]` notification ids (a sorted set: jti by expiry); `ARGV` jti,
/// until, now (ms), TTL margin (ms). Set-if-absent: of the replicas
/// Apple's retries reach, one wins.
pub const FIRST_NOTIFICATION: &str = concat!(
    outlive!(),
    r"
if redis.call('ZADD', KEYS[1], 'NX', ARGV[2], ARGV[1]) == 1 then
  outlive(KEYS[1], ARGV[2], ARGV[3], ARGV[4])
  return 1
end
return 0"
);

/// `KEYS[1]` revoked subs (a hash: sub ▶ `until at`), `KEYS[2]` the
/// channel; `ARGV` sub, at, until, now (ms), TTL margin (ms). As
/// `SubRevocation::merge`.
pub const REVOKE_SUB: &str = concat!(
    outlive!(),
    r"
local held = redis.call('HGET', KEYS[1], ARGV[1])
local keep = ARGV[3]
if held then
  local hu, ha = string.match(held, '^(%d+) (%d+)$')
  if tonumber(ha) >= tonumber(ARGV[2]) then return 0 end
  if tonumber(hu) > tonumber(ARGV[3]) then keep = hu end
end
redis.call('HSET', KEYS[1], ARGV[1], keep .. ' ' .. ARGV[2])
outlive(KEYS[1], keep, ARGV[4], ARGV[5])
redis.call('PUBLISH', KEYS[2], 'sub ' .. keep .. ' ' .. ARGV[2] .. ' ' .. ARGV[1])
return 1"
);

/// `KEYS[1]` email statuses (a hash: sub ▶ `at disabled`), `KEYS[2]` the
/// channel; `ARGV` sub, at, 0 or 1. As `EmailStatus::merge`. No TTL: a
/// status holds until Apple says otherwise, which may be never.
pub const RECORD_EMAIL: &str = r"
local held = redis.call('HGET', KEYS[1], ARGV[1])
if held and tonumber(string.match(held, '^(%d+)')) >= tonumber(ARGV[2]) then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2] .. ' ' .. ARGV[3])
redis.call('PUBLISH', KEYS[2], 'email ' .. ARGV[2] .. ' ' .. ARGV[3] .. ' ' .. ARGV[1])
return 1";

/// `KEYS[1]` a hash; `ARGV` field, value: set unless the same is there.
/// With `ARGV[3..5]` until, now (ms), TTL margin (ms), the hash's TTL is
/// lengthened to outlive `until` (refresh tokens); without, it is left
/// as is (names: kept until forgotten; signing keys: the hash always holds
/// the key that signs, kept while it signs).
pub const SET_IF_CHANGED: &str = concat!(
    outlive!(),
    r"
if redis.call('HGET', KEYS[1], ARGV[1]) == ARGV[2] then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
if ARGV[3] then outlive(KEYS[1], ARGV[3], ARGV[4], ARGV[5]) end
return 1"
);

/// `KEYS[1..2]` sorted sets scored by expiry, `KEYS[3..]` hashes whose
/// values begin with their expiry; `ARGV[1]` now. Drops what expired at
/// `now`, atomically (a sweep never drops a row another replica just
/// extended); how many.
pub const SWEEP: &str = r"
local now = tonumber(ARGV[1])
local n = redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
  + redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', ARGV[1])
for i = 3, #KEYS do
  local all = redis.call('HGETALL', KEYS[i])
  for j = 1, #all, 2 do
    local u = string.match(all[j + 1], '^(%d+) ')
    if u and tonumber(u) <= now then
      redis.call('HDEL', KEYS[i], all[j])
      n = n + 1
    end
  end
end
return n";

/// A change message as the scripts above publish it: `kind n m id`, the
/// id last (it is the rest of the line). `None` for anything else.
pub fn parse(message: &str) -> Option<Change> {
    let mut parts = message.splitn(4, ' ');
    let (kind, a, b, id) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    let (a, b) = (a.parse::<u64>().ok()?, b.parse::<u64>().ok()?);
    let id = id.to_string();
    Some(match kind {
        "session" => Change::Session { id, expires_at: a },
        "sub" => Change::Sub {
            sub: id,
            r: SubRevocation { at: b, until: a },
        },
        "email" => Change::Email {
            sub: id,
            status: EmailStatus {
                disabled: b == 1,
                at: a,
            },
        },
        _ => return None,
    })
}

/// `until rest`, as expiring hash values are kept.
pub fn split_until(value: &[u8]) -> Option<(u64, &[u8])> {
    let space = value.iter().position(|b| *b == b' ')?;
    let until = std::str::from_utf8(&value[..space]).ok()?.parse().ok()?;
    Some((until, &value[space + 1..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_parse_back() {
        assert_eq!(
            parse("sub 900 300 001.a b"),
            Some(Change::Sub {
                sub: "001.a b".into(),
                r: SubRevocation {
                    at: 300,
                    until: 900
                }
            })
        );
        assert_eq!(
            parse("session 5 0 s1"),
            Some(Change::Session {
                id: "s1".into(),
                expires_at: 5
            })
        );
        assert_eq!(parse("email x 1 u"), None);
        assert_eq!(parse("what 1 2 u"), None);
        assert_eq!(split_until(b"12 {\"a\":1}"), Some((12, &b"{\"a\":1}"[..])));
    }
}
