//! The learning rate's one rule and one format, below everything that checks or prints a
//! rate (config, commands, the dashboard's input, error messages).

/// Checks a learning rate: finite and positive. The error completes a sentence that names the
/// setting, e.g. `optimizer.lr: must be positive, got -1`. (Too high a rate is not refused:
/// it diverges, and divergence is reported with advice.)
pub(crate) fn check_lr(lr: f64) -> Result<f64, String> {
    if lr.is_finite() && lr > 0.0 {
        Ok(lr)
    } else {
        Err(format!("must be positive, got {lr}"))
    }
}

/// A learning rate without float noise: `0.01`, `0.0005`, `1.250e-5`.
pub(crate) fn fmt_lr(lr: f64) -> String {
    if lr != 0.0 && (lr.abs() < 1e-4 || lr.abs() >= 1e4) {
        format!("{lr:.3e}")
    } else {
        let s = format!("{lr:.6}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_rule_for_every_rate() {
        assert_eq!(check_lr(0.01), Ok(0.01));
        assert_eq!(check_lr(1e3), Ok(1e3));
        for bad in [0.0, -1.0, f64::NAN, f64::INFINITY] {
            assert!(check_lr(bad).is_err(), "{bad}");
        }
        assert_eq!(check_lr(-1.0).unwrap_err(), "must be positive, got -1");
    }

    #[test]
    fn rates_print_without_float_noise() {
        assert_eq!(fmt_lr(0.0005), "0.0005");
        assert_eq!(fmt_lr(1.25e-5), "1.250e-5");
        assert_eq!(fmt_lr(0.1 + 0.2), "0.3");
    }
}
