//! Timestamps as the protocol writes them: RFC 3339, UTC, milliseconds.

use std::fmt::Write;

/// Formats milliseconds since the Unix epoch as `2026-11-22T10:30:00.123Z`.
pub fn format_rfc3339_millis(unix_ms: u64) -> String {
    let secs = unix_ms / 1000;
    let millis = unix_ms % 1000;
    let days = secs / 86_400;
    let rem = secs % 86_400;
    let (year, month, day) = civil_from_days(days as i64);
    let mut out = String::with_capacity(24);
    // Writing to a String cannot fail.
    let _ = write!(
        out,
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    );
    out
}

/// Days since 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Parses the form [`format_rfc3339_millis`] writes (`YYYY-MM-DDTHH:MM:SS.mmmZ`,
/// the fraction optional and of 1 to 9 digits) back to milliseconds.
pub fn parse_rfc3339_millis(s: &str) -> Option<u64> {
    let b = s.as_bytes();
    if b.len() < 20
        || b[4] != b'-'
        || b[7] != b'-'
        || b[10] != b'T'
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<u64> {
        let part = s.get(r)?;
        if !part.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
        part.parse().ok()
    };
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hour, min, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || min > 59 || sec > 60 {
        return None;
    }
    let mut millis = 0;
    let rest = &s[19..];
    let rest = if let Some(frac) = rest.strip_prefix('.') {
        let digits = frac.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 || digits > 9 {
            return None;
        }
        let mut ms: u64 = frac[..digits.min(3)].parse().ok()?;
        for _ in digits..3 {
            ms *= 10;
        }
        millis = ms;
        &frac[digits..]
    } else {
        rest
    };
    if rest != "Z" {
        return None;
    }
    let days = days_from_civil(year as i64, month as i64, day as i64);
    let secs = days.checked_mul(86_400)? + (hour * 3600 + min * 60 + sec) as i64;
    u64::try_from(secs)
        .ok()?
        .checked_mul(1000)?
        .checked_add(millis)
}

fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_known_instants() {
        assert_eq!(format_rfc3339_millis(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            format_rfc3339_millis(1_795_343_400_123),
            "2026-11-22T10:30:00.123Z"
        );
        // 2000-02-29 is a leap day; 2100 is not a leap year.
        assert_eq!(
            format_rfc3339_millis(951_782_400_000),
            "2000-02-29T00:00:00.000Z"
        );
        assert_eq!(
            format_rfc3339_millis(4_107_542_399_999),
            "2100-02-28T23:59:59.999Z"
        );
    }

    #[test]
    fn parses_what_it_formats() {
        for ms in [0, 1, 951_782_400_000, 1_795_343_400_123, 4_107_542_399_999] {
            assert_eq!(parse_rfc3339_millis(&format_rfc3339_millis(ms)), Some(ms));
        }
        assert_eq!(
            parse_rfc3339_millis("2026-11-22T10:30:00Z"),
            Some(1_795_343_400_000)
        );
        assert_eq!(
            parse_rfc3339_millis("2026-11-22T10:30:00.5Z"),
            Some(1_795_343_400_500)
        );
        for bad in [
            "",
            "2026-11-22 10:30:00Z",
            "2026-13-22T10:30:00Z",
            "2026-11-22T10:30:00.Z",
            "2026-11-22T10:30:00+01:00",
            "2026-1a-22T10:30:00Z",
        ] {
            assert_eq!(parse_rfc3339_millis(bad), None, "{bad}");
        }
    }
}
