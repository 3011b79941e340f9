//! Finite-difference gradient checks shared by the layer tests.

use ndarray::IxDyn;
use rand::seq::SliceRandom;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::layer::{Context, Layer};
use super::tensor::{Tensor, data, data_mut, empty};

/// The finite-difference step.
const EPS: f32 = 1e-3;

fn random(shape: &[usize], rng: &mut ChaCha8Rng) -> Tensor {
    let n = shape.iter().product();
    Tensor::from_shape_vec(
        IxDyn(shape),
        (0..n).map(|_| rng.random_range(-1.0f32..1.0)).collect(),
    )
    .unwrap()
}

/// Distinct values in (-1, 1), at least `2 / n` apart and none near 0, in random order: no
/// finite-difference step crosses a ReLU kink or swaps a max-pool winner.
fn distinct(shape: &[usize], rng: &mut ChaCha8Rng) -> Tensor {
    let n: usize = shape.iter().product();
    let mut v: Vec<f32> = (0..n)
        .map(|i| (i as f32 + 0.3) / n as f32 * 2.0 - 1.0)
        .collect();
    v.shuffle(rng);
    Tensor::from_shape_vec(IxDyn(shape), v).unwrap()
}

/// `L = sum(r * layer(x))` for fixed random `r`, so that `dL/dy = r`; also which outputs are
/// exactly zero (clamped by a ReLU), to notice a difference that crosses a kink.
fn objective(layer: &mut dyn Layer, x: &Tensor, r: &Tensor, ctx: &Context) -> (f64, Vec<bool>) {
    let mut y = empty();
    layer.forward(x, &mut y, ctx);
    let loss = data(&y)
        .iter()
        .zip(data(r))
        .map(|(&a, &b)| a as f64 * b as f64)
        .sum();
    (loss, data(&y).iter().map(|&v| v == 0.0).collect())
}

/// The central difference, or `None` when the two evaluations clamp different outputs: the
/// step crossed a ReLU kink, where the derivative is not defined.
fn central(up: (f64, Vec<bool>), down: (f64, Vec<bool>), eps: f32) -> Option<f64> {
    (up.1 == down.1).then(|| (up.0 - down.0) / (2.0 * eps as f64))
}

fn assert_close(what: &str, analytic: f32, numeric: f64) {
    let (a, n) = (analytic as f64, numeric);
    let tol = 2e-3 + 1e-2 * a.abs().max(n.abs());
    assert!((a - n).abs() <= tol, "{what}: analytic {a} vs numeric {n}");
}

/// Checks the layer's input and parameter gradients against central differences.
pub(crate) fn check_layer(layer: &mut dyn Layer, input_shape: &[usize]) {
    check_layer_with_step(layer, input_shape, EPS)
}

/// `check_layer` with a larger step, for layers that are linear between ReLU kinks
/// (convolutions): their central difference is exact whatever the step away from a kink
/// (steps across one are detected and skipped), so a larger step only shrinks the f32
/// rounding noise of the two evaluations, which Winograd's transforms make larger. More of
/// the steps cross a kink and are skipped.
pub(crate) fn check_layer_with_step(layer: &mut dyn Layer, input_shape: &[usize], eps: f32) {
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    let ctx = Context {
        train: true,
        seed: 1,
        step: 1,
    };
    let mut x = distinct(input_shape, &mut rng);
    let mut y = empty();
    layer.forward(&x, &mut y, &ctx);
    let r = random(y.shape(), &mut rng);
    let mut dx = empty();
    layer.backward(&x, &y, &r, Some(&mut dx));
    assert_eq!(dx.shape(), x.shape(), "input gradient shape");
    let param_grads: Vec<Tensor> = layer.params().iter().map(|p| p.grad.clone()).collect();
    let (mut checked, mut skipped) = (0usize, 0usize);
    let mut check = |what: String, analytic: f32, up, down| match central(up, down, eps) {
        Some(numeric) => {
            checked += 1;
            assert_close(&what, analytic, numeric);
        }
        None => skipped += 1,
    };

    for i in 0..x.len() {
        let orig = data(&x)[i];
        data_mut(&mut x)[i] = orig + eps;
        let up = objective(layer, &x, &r, &ctx);
        data_mut(&mut x)[i] = orig - eps;
        let down = objective(layer, &x, &r, &ctx);
        data_mut(&mut x)[i] = orig;
        check(
            format!("{} d/dx[{i}]", layer.name()),
            data(&dx)[i],
            up,
            down,
        );
    }
    for (p, grad) in param_grads.iter().enumerate() {
        for i in 0..grad.len() {
            let orig = data(&layer.params()[p].value)[i];
            let set = |layer: &mut dyn Layer, v: f32| {
                let mut params = layer.params_mut();
                data_mut(&mut params[p].value)[i] = v;
            };
            set(layer, orig + eps);
            let up = objective(layer, &x, &r, &ctx);
            set(layer, orig - eps);
            let down = objective(layer, &x, &r, &ctx);
            set(layer, orig);
            let name = layer.params()[p].name.clone();
            check(format!("{name}[{i}]"), data(grad)[i], up, down);
        }
    }
    // A larger step crosses more kinks: up to a fifth of the differences may be skipped then.
    let allowed = if eps > EPS { 4 } else { 10 };
    assert!(
        skipped * allowed <= checked,
        "{skipped} of {} differences crossed a kink",
        checked + skipped
    );
}
