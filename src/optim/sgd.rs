//! Stochastic gradient descent with optional momentum and Nesterov momentum, as in Keras:
//! `v = momentum * v - lr * g`, then `w += v` (or `w += momentum * v - lr * g` for Nesterov).
//! Weight decay is an L2 penalty added to the gradient of weights (not biases) first,
//! `g += weight_decay * w`, as PyTorch's SGD `weight_decay`: the same as Keras'
//! `kernel_regularizer = l2(weight_decay / 2)`.

use std::collections::HashMap;

use super::{Optimizer, decays, ensure_state, saved_tensors};
use crate::nn::Param;
use crate::nn::tensor::{Tensor, data, data_mut};

#[derive(Clone)]
pub(crate) struct Sgd {
    momentum: f32,
    nesterov: bool,
    weight_decay: f32,
    names: Vec<String>,
    velocity: Vec<Tensor>,
}

impl Sgd {
    pub(crate) fn new(momentum: f64, nesterov: bool, weight_decay: f64) -> Sgd {
        Sgd {
            momentum: momentum as f32,
            nesterov,
            weight_decay: weight_decay as f32,
            names: Vec::new(),
            velocity: Vec::new(),
        }
    }
}

impl Optimizer for Sgd {
    fn step(&mut self, params: &mut [&mut Param], lr: f64) {
        let lr = lr as f32;
        if self.momentum == 0.0 {
            for p in params.iter_mut() {
                let decay = if decays(p) { self.weight_decay } else { 0.0 };
                let grad = data(&p.grad);
                data_mut(&mut p.value)
                    .iter_mut()
                    .zip(grad)
                    .for_each(|(w, &g)| *w -= lr * (g + decay * *w));
            }
            return;
        }
        ensure_state(&mut self.velocity, &mut self.names, params);
        let (m, nesterov) = (self.momentum, self.nesterov);
        for (p, v) in params.iter_mut().zip(&mut self.velocity) {
            let decay = if decays(p) { self.weight_decay } else { 0.0 };
            let grad = data(&p.grad);
            for ((w, v), &g) in data_mut(&mut p.value).iter_mut().zip(data_mut(v)).zip(grad) {
                let g = g + decay * *w;
                *v = m * *v - lr * g;
                *w += if nesterov { m * *v - lr * g } else { *v };
            }
        }
    }

    fn state(&self) -> Vec<(String, &Tensor)> {
        self.names
            .iter()
            .zip(&self.velocity)
            .map(|(n, v)| (format!("optim.{n}.momentum"), v))
            .collect()
    }

    fn steps(&self) -> u64 {
        0
    }

    fn restore(
        &mut self,
        params: &[&Param],
        state: &HashMap<String, Tensor>,
        _steps: u64,
    ) -> Result<(), String> {
        if self.momentum == 0.0 {
            return Ok(());
        }
        self.velocity = saved_tensors(params, state, "momentum")?;
        self.names = params.iter().map(|p| p.name.clone()).collect();
        Ok(())
    }

    fn boxed_clone(&self) -> Box<dyn Optimizer> {
        Box::new(self.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    fn param(w: f32, g: f32) -> Param {
        let mut p = Param::new("w".into(), array![w].into_dyn());
        p.grad = array![g].into_dyn();
        p
    }

    #[test]
    fn plain_momentum_and_nesterov_steps_match_keras() {
        let mut p = param(1.0, 0.5);
        let mut sgd = Sgd::new(0.0, false, 0.0);
        sgd.step(&mut [&mut p], 0.1);
        assert!((p.value[[0]] - 0.95).abs() < 1e-7);

        // Momentum 0.9: v1 = -0.05, w = 0.95; v2 = -0.045 - 0.05 = -0.095, w = 0.855.
        let mut p = param(1.0, 0.5);
        let mut sgd = Sgd::new(0.9, false, 0.0);
        sgd.step(&mut [&mut p], 0.1);
        sgd.step(&mut [&mut p], 0.1);
        assert!((p.value[[0]] - 0.855).abs() < 1e-6);
        assert_eq!(sgd.state()[0].0, "optim.w.momentum");

        // Nesterov: v1 = -0.05, w = 1 + 0.9 * -0.05 - 0.05 = 0.905.
        let mut p = param(1.0, 0.5);
        Sgd::new(0.9, true, 0.0).step(&mut [&mut p], 0.1);
        assert!((p.value[[0]] - 0.905).abs() < 1e-6);
    }

    #[test]
    fn weight_decay_is_l2_on_the_gradient_of_weights_only() {
        // A 1x2 weight and a bias, both at 1 with gradient 0.5; lr 0.1, weight decay 0.1,
        // momentum 0.9. Weight: g = 0.5 + 0.1 * 1 = 0.6, v1 = -0.06, w1 = 0.94; then
        // g = 0.5 + 0.094 = 0.594, v2 = 0.9 * -0.06 - 0.0594 = -0.1134, w2 = 0.8266.
        // The bias is not decayed: 0.855 as without decay (see above).
        let mut w = Param::new("d.weight".into(), array![[1.0f32, 1.0]].into_dyn());
        w.grad = array![[0.5f32, 0.5]].into_dyn();
        let mut b = param(1.0, 0.5);
        let mut sgd = Sgd::new(0.9, false, 0.1);
        sgd.step(&mut [&mut w, &mut b], 0.1);
        assert!((w.value[[0, 0]] - 0.94).abs() < 1e-6, "{}", w.value);
        sgd.step(&mut [&mut w, &mut b], 0.1);
        assert!((w.value[[0, 1]] - 0.8266).abs() < 1e-6, "{}", w.value);
        assert!((b.value[[0]] - 0.855).abs() < 1e-6, "{}", b.value);

        // Without momentum: w -= lr * (g + wd * w) = 1 - 0.1 * 0.6 = 0.94.
        let mut w = Param::new("d.weight".into(), array![[1.0f32]].into_dyn());
        w.grad = array![[0.5f32]].into_dyn();
        Sgd::new(0.0, false, 0.1).step(&mut [&mut w], 0.1);
        assert!((w.value[[0, 0]] - 0.94).abs() < 1e-7);
    }
}
