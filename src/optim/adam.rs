//! Adam with bias correction, as Keras computes it:
//! `m += (g - m)(1 - β1)`, `v += (g² - v)(1 - β2)`,
//! `w -= lr √(1 - β2ᵗ) / (1 - β1ᵗ) · m / (√v + ε)`.
//! With a weight decay it is AdamW (decoupled, as PyTorch's `AdamW`): weights (not biases)
//! first shrink by `w -= lr · weight_decay · w`, apart from the gradient's moments.

use std::collections::HashMap;

use super::{Optimizer, decays, ensure_state, saved_tensors};
use crate::nn::Param;
use crate::nn::tensor::{Tensor, data, data_mut};

#[derive(Clone)]
pub(crate) struct Adam {
    beta1: f64,
    beta2: f64,
    epsilon: f32,
    weight_decay: f64,
    t: u64,
    names: Vec<String>,
    m: Vec<Tensor>,
    v: Vec<Tensor>,
}

impl Adam {
    pub(crate) fn new(beta1: f64, beta2: f64, epsilon: f64, weight_decay: f64) -> Adam {
        Adam {
            beta1,
            beta2,
            epsilon: epsilon as f32,
            weight_decay,
            t: 0,
            names: Vec::new(),
            m: Vec::new(),
            v: Vec::new(),
        }
    }
}

impl Optimizer for Adam {
    fn step(&mut self, params: &mut [&mut Param], lr: f64) {
        ensure_state(&mut self.m, &mut self.names, params);
        ensure_state(&mut self.v, &mut self.names, params);
        self.t += 1;
        let t = self.t as i32;
        let lr_t = (lr * (1.0 - self.beta2.powi(t)).sqrt() / (1.0 - self.beta1.powi(t))) as f32;
        let (b1, b2, eps) = (self.beta1 as f32, self.beta2 as f32, self.epsilon);
        for ((p, m), v) in params.iter_mut().zip(&mut self.m).zip(&mut self.v) {
            if self.weight_decay > 0.0 && decays(p) {
                let keep = (1.0 - lr * self.weight_decay) as f32;
                data_mut(&mut p.value).iter_mut().for_each(|w| *w *= keep);
            }
            let grad = data(&p.grad);
            for (((w, m), v), &g) in data_mut(&mut p.value)
                .iter_mut()
                .zip(data_mut(m))
                .zip(data_mut(v))
                .zip(grad)
            {
                *m += (g - *m) * (1.0 - b1);
                *v += (g * g - *v) * (1.0 - b2);
                *w -= lr_t * *m / (v.sqrt() + eps);
            }
        }
    }

    fn state(&self) -> Vec<(String, &Tensor)> {
        let m = self
            .names
            .iter()
            .zip(&self.m)
            .map(|(n, t)| (format!("optim.{n}.m"), t));
        let v = self
            .names
            .iter()
            .zip(&self.v)
            .map(|(n, t)| (format!("optim.{n}.v"), t));
        m.chain(v).collect()
    }

    fn steps(&self) -> u64 {
        self.t
    }

    fn restore(
        &mut self,
        params: &[&Param],
        state: &HashMap<String, Tensor>,
        steps: u64,
    ) -> Result<(), String> {
        self.m = saved_tensors(params, state, "m")?;
        self.v = saved_tensors(params, state, "v")?;
        self.names = params.iter().map(|p| p.name.clone()).collect();
        self.t = steps;
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

    #[test]
    fn first_steps_move_by_about_lr() {
        // With bias correction the first step is lr * g / (|g| + eps) = about lr.
        let mut p = Param::new("w".into(), array![1.0f32, -1.0].into_dyn());
        p.grad = array![0.3f32, -2.0].into_dyn();
        let mut adam = Adam::new(0.9, 0.999, 1e-7, 0.0);
        adam.step(&mut [&mut p], 0.01);
        assert!((p.value[[0]] - 0.99).abs() < 1e-5, "{}", p.value);
        assert!((p.value[[1]] + 0.99).abs() < 1e-5);
        adam.step(&mut [&mut p], 0.01);
        assert!((p.value[[0]] - 0.98).abs() < 1e-5);
        assert_eq!(adam.state().len(), 2);
    }

    #[test]
    fn adamw_decays_weights_apart_from_the_moments() {
        // PyTorch's AdamW: w = w * (1 - lr * wd), then the Adam step. lr 0.01, wd 0.5:
        // w = 2 * 0.995 - 0.01 (first step moves by about lr) = 1.98; a zero gradient moves
        // it by decay alone. The bias (a vector) is not decayed.
        let mut w = Param::new("d.weight".into(), array![[2.0f32, 2.0]].into_dyn());
        w.grad = array![[0.3f32, 0.0]].into_dyn();
        let mut b = Param::new("d.bias".into(), array![2.0f32].into_dyn());
        b.grad = array![0.0f32].into_dyn();
        let mut adamw = Adam::new(0.9, 0.999, 1e-7, 0.5);
        adamw.step(&mut [&mut w, &mut b], 0.01);
        assert!((w.value[[0, 0]] - 1.98).abs() < 1e-5, "{}", w.value);
        assert_eq!(w.value[[0, 1]], 2.0 * 0.995f32);
        assert_eq!(b.value[[0]], 2.0);
    }
}
