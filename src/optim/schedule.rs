//! Learning-rate schedules. `step` and `plateau` act at epoch ends: each multiplies the
//! current rate, so a rate changed by hand mid-run stays changed. `cosine` and `one_cycle`
//! act before every step: the rate is a function of the step count (so a resumed run gets the
//! same rates), `optimizer.lr` times [`Schedule::factor_at`], which a rate changed by hand
//! scales from then on.

use crate::config::ScheduleConfig;

pub(crate) struct Schedule {
    config: ScheduleConfig,
    best: f64,
    stalled: usize,
}

impl Schedule {
    pub(crate) fn new(config: ScheduleConfig) -> Schedule {
        Schedule {
            config,
            best: f64::INFINITY,
            stalled: 0,
        }
    }

    /// (best loss, epochs stalled) of the plateau rule, for checkpoints.
    pub(crate) fn progress(&self) -> (f64, usize) {
        (self.best, self.stalled)
    }

    pub(crate) fn set_progress(&mut self, (best, stalled): (f64, usize)) {
        self.best = best;
        self.stalled = stalled;
    }

    /// Whether the rate follows the step count (cosine, one-cycle) rather than epoch ends.
    pub(crate) fn per_step(&self) -> bool {
        matches!(
            self.config,
            ScheduleConfig::Cosine { .. } | ScheduleConfig::OneCycle { .. }
        )
    }

    /// For a per-step schedule, the factor of `optimizer.lr` at optimizer step `step`
    /// (0-based) of `total` steps, with `per_epoch` steps an epoch; `None` for the others.
    /// Steps past the end keep the last step's factor.
    ///
    /// cosine, with `W = round(warmup_epochs * per_epoch)` warm-up steps:
    /// `(s + 1) / W` for `s < W`, then `(1 + cos(π (s - W) / (total - W))) / 2`.
    ///
    /// one_cycle, as PyTorch's `OneCycleLR` with `anneal_strategy = "cos"`: with
    /// `cos_anneal(a, b, p) = b + (a - b) (1 + cos(π p)) / 2`, `up = pct_start * total - 1`,
    /// `low = 1 / div_factor`: `cos_anneal(low, 1, s / up)` for `s <= up`, then
    /// `cos_anneal(1, low / final_div_factor, (s - up) / (total - 1 - up))`.
    pub(crate) fn factor_at(&self, step: u64, total: u64, per_epoch: u64) -> Option<f64> {
        let total = total.max(1);
        let s = step.min(total - 1) as f64;
        let total = total as f64;
        let half_cos = |p: f64| (1.0 + (std::f64::consts::PI * p.clamp(0.0, 1.0)).cos()) / 2.0;
        match self.config {
            ScheduleConfig::Cosine { warmup_epochs } => {
                let warmup = (warmup_epochs * per_epoch as f64).round().min(total - 1.0);
                Some(if s < warmup {
                    (s + 1.0) / warmup
                } else {
                    half_cos((s - warmup) / (total - warmup))
                })
            }
            ScheduleConfig::OneCycle {
                pct_start,
                div_factor,
                final_div_factor,
            } => {
                let anneal = |a: f64, b: f64, p: f64| b + (a - b) * half_cos(p);
                let (up, end) = (pct_start * total - 1.0, total - 1.0);
                let low = 1.0 / div_factor;
                // A phase of no steps is passed at once (PyTorch would divide by zero).
                let frac = |from: f64, to: f64| {
                    if to > from {
                        (s - from) / (to - from)
                    } else {
                        1.0
                    }
                };
                Some(if s <= up {
                    anneal(low, 1.0, frac(0.0, up))
                } else {
                    anneal(1.0, low / final_div_factor, frac(up.max(0.0), end))
                })
            }
            ScheduleConfig::Step { .. } | ScheduleConfig::Plateau { .. } => None,
        }
    }

    /// After epoch `epoch` (1-based) with validation loss `val_loss`, the new rate if it changes.
    pub(crate) fn after_epoch(
        &mut self,
        epoch: usize,
        lr: f64,
        val_loss: Option<f64>,
    ) -> Option<f64> {
        match self.config {
            ScheduleConfig::Step {
                every_epochs,
                gamma,
            } => (epoch.is_multiple_of(every_epochs)).then_some(lr * gamma),
            ScheduleConfig::Cosine { .. } | ScheduleConfig::OneCycle { .. } => None,
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

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-12
    }

    #[test]
    fn cosine_warms_up_linearly_then_follows_a_half_cosine_to_zero() {
        // 2 epochs of 5 steps, 1 warm-up epoch: 0.2, 0.4, .., 1, then
        // (1 + cos(π k / 5)) / 2 for k = 0..4: 1, 0.9045085, 0.6545085, 0.3454915, 0.0954915.
        let mut s = Schedule::new(ScheduleConfig::Cosine { warmup_epochs: 1.0 });
        let got: Vec<f64> = (0..11).map(|i| s.factor_at(i, 10, 5).unwrap()).collect();
        let want = [
            0.2,
            0.4,
            0.6,
            0.8,
            1.0,
            1.0,
            0.904_508_497_187_473_7,
            0.654_508_497_187_473_7,
            0.345_491_502_812_526_3,
            0.095_491_502_812_526_27,
            0.095_491_502_812_526_27,
        ];
        for (i, (g, w)) in got.iter().zip(want).enumerate() {
            assert!(close(*g, w), "step {i}: {g} vs {w}");
        }
        assert!(s.per_step());
        assert_eq!(s.after_epoch(1, 1.0, None), None, "nothing at epoch ends");
    }

    #[test]
    fn one_cycle_matches_pytorch() {
        // OneCycleLR(max_lr=1, total_steps=10) with its defaults (pct_start 0.3, div_factor
        // 25, final_div_factor 1e4): phase 1 ends at step 0.3 * 10 - 1 = 2, phase 2 at 9. Its
        // formula (torch/optim/lr_scheduler.py: _annealing_cos over _schedule_phases)
        // evaluated in Python gives these rates.
        let s = Schedule::new(ScheduleConfig::OneCycle {
            pct_start: 0.3,
            div_factor: 25.0,
            final_div_factor: 1e4,
        });
        let want = [
            0.04,
            0.52,
            1.0,
            0.950_484_632_013_473_7,
            0.811_745_653_949_763_1,
            0.611_262_021_936_289_3,
            0.388_741_978_063_710_75,
            0.188_258_346_050_236_97,
            0.049_519_367_986_526_286,
            4e-6,
        ];
        for (i, w) in want.into_iter().enumerate() {
            let g = s.factor_at(i as u64, 10, 5).unwrap();
            assert!((g - w).abs() < 1e-12, "step {i}: {g} vs {w}");
        }
    }
}
