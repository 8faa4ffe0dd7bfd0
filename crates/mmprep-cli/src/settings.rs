//! `--set KEY=VALUE`: engine-only changes to the machine facts ([`Profile`]) a run assumes.
//!
//! The host kernel runs with this machine's limits; the engine can model another process, for
//! example one with a million VMAs (`--set max_map_count=4000000`). A setting changes only the
//! engine's profile: on `diff` the kernel side still runs with the machine's own limits.

use mmprep::Profile;
use mmprep::profile::Overcommit;

/// The keys `--set` takes, with what their value means (the text of the usage error).
pub const KEYS_HELP: &str = "\
keys: max_map_count=N, rlimit_as=BYTES, rlimit_data=BYTES, rlimit_memlock=BYTES, rlimit_stack=BYTES \
(BYTES: decimal with an optional K, M, G or T suffix, or `unlimited`), \
overcommit=guess|always|never (or 0|1|2), thp.enabled=always|madvise|never, thp.defrag=..., \
thp.use_zero_page=0|1, thp.shmem_enabled=..., config.pt_reclaim=0|1 (the THP values as sysfs takes them), \
arch=NAME (the guest architecture: x86_64, x86_64-la57, i386, arm64-4k-48, arm64-16k-47, arm64-64k-48, \
riscv64-sv39, riscv64-sv48, ...; docs/profiles.md), reserved=0xSTART-0xEND (a host-reserved range, repeatable)";

/// One `KEY=VALUE`, checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Setting {
    MaxMapCount(u64),
    RlimitAs(u64),
    RlimitData(u64),
    RlimitMemlock(u64),
    RlimitStack(u64),
    Overcommit(Overcommit),
    /// A transparent-hugepage setting or build option, by its sysfs name ([`Profile::set`]).
    Sysfs(String, String),
}

impl Setting {
    /// Writes the setting into `profile`.
    pub fn apply(&self, profile: &mut Profile) {
        match self {
            Setting::MaxMapCount(n) => profile.max_map_count = *n,
            Setting::RlimitAs(n) => profile.rlimit_as = *n,
            Setting::RlimitData(n) => profile.rlimit_data = *n,
            Setting::RlimitMemlock(n) => profile.rlimit_memlock = *n,
            Setting::RlimitStack(n) => profile.rlimit_stack = *n,
            Setting::Overcommit(o) => profile.overcommit = *o,
            Setting::Sysfs(key, value) => profile.set(key, value).expect("checked by parse"),
        }
    }
}

/// Parses `KEY=VALUE` (clap's value parser for `--set`); the error names the keys.
pub fn parse(text: &str) -> Result<Setting, String> {
    let Some((key, value)) = text.split_once('=') else {
        return Err(format!("expected KEY=VALUE; {KEYS_HELP}"));
    };
    let bytes = || parse_bytes(value).ok_or_else(|| format!("`{value}` is not a size for {key}; {KEYS_HELP}"));
    Ok(match key {
        "max_map_count" => Setting::MaxMapCount(
            value
                .parse()
                .map_err(|_| format!("`{value}` is not a count for {key}; {KEYS_HELP}"))?,
        ),
        "rlimit_as" => Setting::RlimitAs(bytes()?),
        "rlimit_data" => Setting::RlimitData(bytes()?),
        "rlimit_memlock" => Setting::RlimitMemlock(bytes()?),
        "rlimit_stack" => Setting::RlimitStack(bytes()?),
        "overcommit" => Setting::Overcommit(match value {
            "guess" | "0" => Overcommit::Guess,
            "always" | "1" => Overcommit::Always,
            "never" | "2" => Overcommit::Never,
            _ => return Err(format!("`{value}` is not an overcommit mode; {KEYS_HELP}")),
        }),
        _ => match Profile::reference_host().set(key, value) {
            Ok(()) => Setting::Sysfs(key.to_string(), value.to_string()),
            Err(why) => return Err(format!("`{key}={value}`: {why}; {KEYS_HELP}")),
        },
    })
}

/// A byte count: decimal digits with an optional upper-case binary suffix (as in scenarios), or `unlimited` (`u64::MAX`,
/// `RLIM_INFINITY`).
fn parse_bytes(value: &str) -> Option<u64> {
    if value == "unlimited" {
        return Some(u64::MAX);
    }
    let (digits, shift) = match value.as_bytes().last()? {
        b'K' => (&value[..value.len() - 1], 10),
        b'M' => (&value[..value.len() - 1], 20),
        b'G' => (&value[..value.len() - 1], 30),
        b'T' => (&value[..value.len() - 1], 40),
        _ => (value, 0),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse::<u64>().ok()?.checked_mul(1 << shift)
}

/// `profile` with `settings` applied in order (a later one wins).
pub fn apply_all(mut profile: Profile, settings: &[Setting]) -> Profile {
    for s in settings {
        s.apply(&mut profile);
    }
    profile
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_each_key() {
        assert_eq!(parse("max_map_count=4000000"), Ok(Setting::MaxMapCount(4_000_000)));
        assert_eq!(parse("rlimit_as=1G"), Ok(Setting::RlimitAs(1 << 30)));
        assert_eq!(parse("rlimit_data=unlimited"), Ok(Setting::RlimitData(u64::MAX)));
        assert_eq!(parse("rlimit_memlock=64K"), Ok(Setting::RlimitMemlock(64 << 10)));
        assert_eq!(parse("rlimit_stack=8388608"), Ok(Setting::RlimitStack(8 << 20)));
        assert_eq!(parse("overcommit=never"), Ok(Setting::Overcommit(Overcommit::Never)));
        assert_eq!(parse("overcommit=1"), Ok(Setting::Overcommit(Overcommit::Always)));
    }

    /// `arch=` and `reserved=` go through `Profile::set`; the architecture is applied in order,
    /// so a later `reserved=` is rounded to its page.
    #[test]
    fn arch_and_reserved() {
        let arch = parse("arch=arm64-16k").expect("arch");
        let reserved = parse("reserved=0x10000000-0x10001000").expect("reserved");
        let p = apply_all(Profile::reference_host(), &[arch, reserved]);
        assert_eq!((p.arch.name(), p.arch.page_size()), ("arm64-16k-47", 16 << 10));
        assert_eq!(p.reserved, vec![0x1000_0000..0x1000_1000]);
        assert!(parse("arch=vax").unwrap_err().contains("arch is x86_64"));
        assert!(parse("reserved=0x10-0x20").is_err());
    }

    #[test]
    fn refuses_bad_input() {
        for bad in [
            "max_map_count",
            "max_map_count=",
            "max_map_count=-1",
            "max_map_count=1K",
            "rlimit_as=K",
            "rlimit_as=1Q",
            "rlimit_as=1k",
            "rlimit_as=99999999999T",
            "overcommit=3",
            "stack=1",
        ] {
            let e = parse(bad).expect_err(bad);
            assert!(e.contains("keys: max_map_count"), "{bad}: {e}");
        }
    }
}
