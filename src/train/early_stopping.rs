//! Early stopping on validation loss, keeping the best weights to restore.

use crate::config::EarlyStoppingConfig;
use crate::nn::tensor::Tensor;

pub(crate) struct EarlyStopping {
    config: EarlyStoppingConfig,
    best: f64,
    waited: usize,
    /// The weights of the best epoch so far, when they are to be restored.
    pub(crate) best_weights: Option<Vec<Tensor>>,
}

/// What to do after an epoch.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    Improved,
    Continue,
    Stop,
}

impl EarlyStopping {
    pub(crate) fn new(config: EarlyStoppingConfig) -> EarlyStopping {
        EarlyStopping {
            config,
            best: f64::INFINITY,
            waited: 0,
            best_weights: None,
        }
    }

    /// (best loss, epochs waited), for checkpoints.
    pub(crate) fn progress(&self) -> (f64, usize) {
        (self.best, self.waited)
    }

    pub(crate) fn set_progress(&mut self, (best, waited): (f64, usize)) {
        self.best = best;
        self.waited = waited;
    }

    pub(crate) fn restore_best(&self) -> bool {
        self.config.restore_best
    }

    pub(crate) fn observe(&mut self, val_loss: f64) -> Verdict {
        if val_loss < self.best - self.config.min_delta {
            self.best = val_loss;
            self.waited = 0;
            return Verdict::Improved;
        }
        self.waited += 1;
        if self.waited >= self.config.patience {
            Verdict::Stop
        } else {
            Verdict::Continue
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stops_after_patience_epochs_without_improvement() {
        let mut e = EarlyStopping::new(EarlyStoppingConfig {
            patience: 2,
            min_delta: 0.01,
            restore_best: true,
        });
        assert_eq!(e.observe(1.0), Verdict::Improved);
        assert_eq!(e.observe(0.995), Verdict::Continue);
        assert_eq!(e.observe(0.5), Verdict::Improved);
        assert_eq!(e.observe(0.6), Verdict::Continue);
        assert_eq!(e.observe(0.7), Verdict::Stop);
    }
}
