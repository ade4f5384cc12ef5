//! `[limits] min_free_space`: how much room the file system of the spool and the Maildirs must
//! keep (issue 15). Written `"100MB"`, `"5%"`, `"100MB or 5%"` (the smaller of the two: the
//! default, so that a small disk is not refused for ever), or `"0"` (never refuse).

use std::fmt;
use std::str::FromStr;

use crate::BadValue;

/// The room to keep free; the smaller of the parts given is what counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FreeSpace {
    /// Octets, when given.
    pub bytes: Option<u64>,
    /// Percent of the file system's size, when given.
    pub percent: Option<u8>,
}

impl Default for FreeSpace {
    /// 100 MB or 5 %, whichever is smaller.
    fn default() -> Self {
        FreeSpace {
            bytes: Some(100 * 1_000_000),
            percent: Some(5),
        }
    }
}

impl FreeSpace {
    /// The octets to keep free on a file system of `total` octets.
    pub fn threshold(&self, total: u64) -> u64 {
        let by_percent = self
            .percent
            .map(|p| (u128::from(total) * u128::from(p) / 100) as u64);
        match (self.bytes, by_percent) {
            (Some(b), Some(p)) => b.min(p),
            (Some(b), None) => b,
            (None, Some(p)) => p,
            (None, None) => 0,
        }
    }

    /// True if `need` more octets can be written where `free` of `total` are free, keeping the
    /// threshold. Pure: the caller asks the file system.
    pub fn allows(&self, free: u64, total: u64, need: u64) -> bool {
        free.saturating_sub(need) >= self.threshold(total) && free >= need
    }
}

/// `512`, `"512KB"`, `"100MB"`, `"2GB"` (powers of 1000, as `df -H`; `KiB`, `MiB`, `GiB` for
/// powers of 1024).
fn parse_size(s: &str) -> Option<u64> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (digits, unit) = s.split_at(split);
    let n: u64 = digits.parse().ok()?;
    let mult: u64 = match unit.trim().to_ascii_uppercase().as_str() {
        "" | "B" => 1,
        "KB" => 1_000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        "KIB" => 1 << 10,
        "MIB" => 1 << 20,
        "GIB" => 1 << 30,
        _ => return None,
    };
    n.checked_mul(mult)
}

impl FromStr for FreeSpace {
    type Err = BadValue;
    fn from_str(s: &str) -> Result<Self, BadValue> {
        let bad = || {
            BadValue(format!(
                "{s:?} is not like \"100MB\", \"5%\" or \"100MB or 5%\""
            ))
        };
        let mut out = FreeSpace {
            bytes: None,
            percent: None,
        };
        for part in s.split(" or ") {
            let part = part.trim();
            if let Some(p) = part.strip_suffix('%') {
                let p: u8 = p.trim().parse().map_err(|_| bad())?;
                if p > 100 || out.percent.is_some() {
                    return Err(bad());
                }
                out.percent = Some(p);
            } else {
                if out.bytes.is_some() {
                    return Err(bad());
                }
                out.bytes = Some(parse_size(part).ok_or_else(bad)?);
            }
        }
        Ok(out)
    }
}

impl fmt::Display for FreeSpace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.bytes, self.percent) {
            (Some(b), Some(p)) => write!(f, "{b} or {p}%"),
            (Some(b), None) => write!(f, "{b}"),
            (None, Some(p)) => write!(f, "{p}%"),
            (None, None) => f.write_str("0"),
        }
    }
}

impl serde::Serialize for FreeSpace {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for FreeSpace {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(serde::Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Number(u64),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Number(n) => Ok(FreeSpace {
                bytes: Some(n),
                percent: None,
            }),
            Raw::Text(t) => t.parse().map_err(serde::de::Error::custom),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_print() {
        /// (text, (octets, percent) when it parses, printed back).
        type Row = (
            &'static str,
            Option<(Option<u64>, Option<u8>)>,
            &'static str,
        );
        let table: &[Row] = &[
            (
                "100MB or 5%",
                Some((Some(100_000_000), Some(5))),
                "100000000 or 5%",
            ),
            (
                "5% or 1MiB",
                Some((Some(1 << 20), Some(5))),
                "1048576 or 5%",
            ),
            ("512KB", Some((Some(512_000), None)), "512000"),
            ("2 GB", Some((Some(2_000_000_000), None)), "2000000000"),
            ("10%", Some((None, Some(10))), "10%"),
            ("0", Some((Some(0), None)), "0"),
            ("101%", None, ""),
            ("5% or 6%", None, ""),
            ("lots", None, ""),
            ("1TB", None, ""),
        ];
        for (text, want, printed) in table {
            let got = text.parse::<FreeSpace>().ok();
            assert_eq!(got.map(|f| (f.bytes, f.percent)), *want, "{text}");
            if let Some(f) = got {
                assert_eq!(f.to_string(), *printed);
                assert_eq!(f.to_string().parse::<FreeSpace>(), Ok(f));
            }
        }
    }

    #[test]
    fn allows_table() {
        const MB: u64 = 1_000_000;
        let default = FreeSpace::default();
        let one_mb: FreeSpace = "1MB".parse().unwrap();
        let off: FreeSpace = "0".parse().unwrap();
        // (rule, free, total, need, allowed)
        let table = [
            // 1 TB disk: 100 MB is the smaller.
            (default, 150 * MB, 1_000_000 * MB, 10 * MB, true),
            (default, 105 * MB, 1_000_000 * MB, 10 * MB, false),
            // 8 MB disk: 5 % (400 kB) is the smaller.
            (default, MB, 8 * MB, 500_000, true),
            (default, MB, 8 * MB, 700_000, false),
            (one_mb, 2 * MB, 4 * MB, MB, true),
            (one_mb, 2 * MB, 4 * MB, MB + 1, false),
            (off, 10, 4 * MB, 10, true),
            (off, 10, 4 * MB, 11, false),
        ];
        for (rule, free, total, need, want) in table {
            assert_eq!(
                rule.allows(free, total, need),
                want,
                "{rule} {free} {total} {need}"
            );
        }
    }
}
