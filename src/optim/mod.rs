//! Optimizers (SGD with momentum or Nesterov and L2 weight decay, Adam, AdamW) and learning-rate schedules.
//! The learning rate is not theirs: the training state owns the live value and passes it to
//! every step, so it may change between any two steps and is never kept in step by hand.

mod adam;
mod schedule;
mod sgd;

pub(crate) use adam::Adam;
pub(crate) use schedule::Schedule;
pub(crate) use sgd::Sgd;

use std::collections::HashMap;

use crate::config::OptimizerConfig;
use crate::nn::Param;
use crate::nn::tensor::Tensor;

/// Updates parameters from their gradients.
pub trait Optimizer: Send {
    /// Applies one update with learning rate `lr` to `params` (always the same parameters, in
    /// the same order).
    fn step(&mut self, params: &mut [&mut Param], lr: f64);
    /// Internal state tensors with names such as `optim.conv1.weight.m`, for checkpoints.
    fn state(&self) -> Vec<(String, &Tensor)>;
    /// Updates applied so far (Adam's bias correction depends on it).
    fn steps(&self) -> u64;
    /// Puts back state saved by `state` for these parameters, checking names and shapes.
    fn restore(
        &mut self,
        params: &[&Param],
        state: &HashMap<String, Tensor>,
        steps: u64,
    ) -> Result<(), String>;
    fn boxed_clone(&self) -> Box<dyn Optimizer>;
}

/// Looks up one saved state tensor per parameter, named `optim.<param>.<suffix>`.
/// None saved at all (a checkpoint before the first step) gives an empty list: the state is
/// then created as zeros on the first step, as for a fresh optimizer.
fn saved_tensors(
    params: &[&Param],
    state: &HashMap<String, Tensor>,
    suffix: &str,
) -> Result<Vec<Tensor>, String> {
    if params
        .iter()
        .all(|p| !state.contains_key(&format!("optim.{}.{suffix}", p.name)))
    {
        return Ok(Vec::new());
    }
    params
        .iter()
        .map(|p| {
            let name = format!("optim.{}.{suffix}", p.name);
            let t = state
                .get(&name)
                .ok_or_else(|| format!("optimizer state {name} is missing"))?;
            if t.shape() != p.value.shape() {
                return Err(format!(
                    "{name} has shape {:?}, expected {:?}",
                    t.shape(),
                    p.value.shape()
                ));
            }
            Ok(t.clone())
        })
        .collect()
}

/// The optimizer a config asks for (its `lr` is the initial rate of the training state).
pub(crate) fn build(config: &OptimizerConfig) -> Box<dyn Optimizer> {
    match *config {
        OptimizerConfig::Sgd {
            momentum,
            nesterov,
            weight_decay,
            ..
        } => Box::new(Sgd::new(momentum, nesterov, weight_decay)),
        OptimizerConfig::Adam {
            beta1,
            beta2,
            epsilon,
            ..
        } => Box::new(Adam::new(beta1, beta2, epsilon, 0.0)),
        OptimizerConfig::Adamw {
            beta1,
            beta2,
            epsilon,
            weight_decay,
            ..
        } => Box::new(Adam::new(beta1, beta2, epsilon, weight_decay)),
    }
}

/// Whether weight decay applies to a parameter: weights (kernels) with two or more axes do,
/// biases and other vectors (such as a normalisation's scale and shift) do not, as Keras'
/// `kernel_regularizer` and the usual AdamW practice.
fn decays(p: &Param) -> bool {
    p.value.ndim() >= 2
}

/// Creates one zeroed state tensor per parameter (and records their names) on first use.
fn ensure_state(state: &mut Vec<Tensor>, names: &mut Vec<String>, params: &[&mut Param]) {
    if state.len() != params.len() {
        *state = params
            .iter()
            .map(|p| Tensor::zeros(p.value.raw_dim()))
            .collect();
        *names = params.iter().map(|p| p.name.clone()).collect();
    }
}
