//! Learning-rate schedules applied at epoch ends. Each multiplies the current rate, so a rate
//! changed by hand mid-run stays changed.

use crate::config::ScheduleConfig;

pub struct Schedule {
    config: ScheduleConfig,
    best: f64,
    stalled: usize,
}

impl Schedule {
    pub fn new(config: ScheduleConfig) -> Schedule {
        Schedule {
            config,
            best: f64::INFINITY,
            stalled: 0,
        }
    }

    /// (best loss, epochs stalled) of the plateau rule, for checkpoints.
    pub fn progress(&self) -> (f64, usize) {
        (self.best, self.stalled)
    }

    pub fn set_progress(&mut self, (best, stalled): (f64, usize)) {
        self.best = best;
        self.stalled = stalled;
    }

    /// After epoch `epoch` (1-based) with validation loss `val_loss`, the new rate if it changes.
    pub fn after_epoch(&mut self, epoch: usize, lr: f64, val_loss: Option<f64>) -> Option<f64> {
        match self.config {
            ScheduleConfig::Step {
                every_epochs,
                gamma,
            } => (epoch.is_multiple_of(every_epochs)).then_some(lr * gamma),
            ScheduleConfig::Plateau {
                factor,
                patience,
                min_lr,
                min_delta,
            } => {
                let loss = val_loss?;
                if loss < self.best - min_delta {
                    self.best = loss;
                    self.stalled = 0;
                    return None;
                }
                self.stalled += 1;
                if self.stalled > patience && lr > min_lr {
                    self.stalled = 0;
                    Some((lr * factor).max(min_lr))
                } else {
                    None
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn step_decay_every_n_epochs() {
        let mut s = Schedule::new(ScheduleConfig::Step {
            every_epochs: 2,
            gamma: 0.5,
        });
        assert_eq!(s.after_epoch(1, 1.0, None), None);
        assert_eq!(s.after_epoch(2, 1.0, None), Some(0.5));
    }

    #[test]
    fn plateau_waits_for_patience_then_reduces() {
        let mut s = Schedule::new(ScheduleConfig::Plateau {
            factor: 0.1,
            patience: 1,
            min_lr: 0.001,
            min_delta: 0.0,
        });
        assert_eq!(s.after_epoch(1, 0.1, Some(1.0)), None);
        assert_eq!(s.after_epoch(2, 0.1, Some(1.0)), None);
        assert!(
            s.after_epoch(3, 0.1, Some(1.1))
                .is_some_and(|lr| (lr - 0.01).abs() < 1e-12)
        );
        assert_eq!(s.after_epoch(4, 0.001, Some(2.0)), None);
        // Patience is exceeded again, but the rate is already at its floor.
        assert_eq!(s.after_epoch(5, 0.001, Some(2.0)), None);
    }
}
