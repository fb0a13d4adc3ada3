//! How the kubelet stats monitors grade and show what they read: severity from a percentage,
//! percentages and byte counts as people read them.

use crate::alert::Severity;

/// The severity for a percentage used: `crit_at` or more is critical, `warn_at` or more warns.
pub fn level(used: f64, warn_at: u8, crit_at: u8) -> Option<Severity> {
    if used >= f64::from(crit_at) {
        Some(Severity::Critical)
    } else if used >= f64::from(warn_at) {
        Some(Severity::Warning)
    } else {
        None
    }
}

/// A percentage as people read it, rounded down so that "85%" is never below an 85 threshold.
pub fn percent(used: f64) -> String {
    format!("{}%", used.floor() as u64)
}

/// Bytes in binary units: `512 B`, `1.5 KiB`, `9.8 GiB`.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_percentages_and_bytes() {
        assert_eq!(level(84.9, 85, 97), None);
        assert_eq!(level(85.0, 85, 97), Some(Severity::Warning));
        assert_eq!(level(97.0, 85, 97), Some(Severity::Critical));
        assert_eq!(percent(96.99), "96%");
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(bytes(10 * 1024 * 1024 * 1024), "10.0 GiB");
    }
}
