//! Forward and backward of each layer at the shapes of the shipped configs (batch 128).
//! `cargo bench --bench layers`; compare with `cnn-tui bench` for whole training steps.

use criterion::{Criterion, criterion_group, criterion_main};
use ndarray::IxDyn;

use cnn_tui::config::{Activation, Init, Padding};
use cnn_tui::nn::tensor::{Tensor, empty};
use cnn_tui::nn::{ActivationLayer, Context, Conv2d, ConvGeometry, Dense, Layer, MaxPool2d};

const BATCH: usize = 128;

fn input(shape: &[usize]) -> Tensor {
    let mut full = vec![BATCH];
    full.extend_from_slice(shape);
    let n: usize = full.iter().product();
    Tensor::from_shape_vec(
        IxDyn(&full),
        (0..n)
            .map(|i| ((i * 7919) % 1000) as f32 / 1000.0 - 0.3)
            .collect(),
    )
    .unwrap()
}

fn bench_layer(
    c: &mut Criterion,
    name: &str,
    layer: &mut dyn Layer,
    in_shape: &[usize],
    needs_dx: bool,
) {
    let x = input(in_shape);
    let mut y = empty();
    let ctx = Context {
        train: true,
        seed: 1,
        step: 1,
    };
    layer.forward(&x, &mut y, &ctx);
    let dy = y.clone();
    let mut dx = empty();
    c.bench_function(&format!("{name} forward"), |b| {
        b.iter(|| layer.forward(&x, &mut y, &ctx))
    });
    c.bench_function(&format!("{name} backward"), |b| {
        b.iter(|| layer.backward(&x, &y, &dy, if needs_dx { Some(&mut dx) } else { None }))
    });
}

fn layers(c: &mut Criterion) {
    let g = |input, k| ConvGeometry::new(input, k, 1, Padding::Valid).unwrap();
    // mnist-convnet
    bench_layer(
        c,
        "mnist-convnet conv1 32x3x3+relu (first layer)",
        &mut Conv2d::new("c", g([28, 28, 1], 3), 32, Init::GlorotUniform, 1, true),
        &[28, 28, 1],
        false,
    );
    bench_layer(
        c,
        "mnist-convnet relu1",
        &mut ActivationLayer::new("r", Activation::Relu, &[26, 26, 32]),
        &[26, 26, 32],
        true,
    );
    bench_layer(
        c,
        "mnist-convnet pool1",
        &mut MaxPool2d::new("p", [26, 26, 32], 2, 2).unwrap(),
        &[26, 26, 32],
        true,
    );
    bench_layer(
        c,
        "mnist-convnet conv2 64x3x3+relu",
        &mut Conv2d::new("c", g([13, 13, 32], 3), 64, Init::GlorotUniform, 1, true),
        &[13, 13, 32],
        true,
    );
    bench_layer(
        c,
        "mnist-convnet pool2",
        &mut MaxPool2d::new("p", [11, 11, 64], 2, 2).unwrap(),
        &[11, 11, 64],
        true,
    );
    bench_layer(
        c,
        "mnist-convnet dense 1600x10",
        &mut Dense::new("d", 1600, 10, Init::GlorotUniform, 1),
        &[1600],
        true,
    );
    // cifar10-keras and cifar10-tutorial
    let same = |input, k| ConvGeometry::new(input, k, 1, Padding::Same).unwrap();
    bench_layer(
        c,
        "cifar10-keras conv1 32x3x3 same+relu (first layer)",
        &mut Conv2d::new("c", same([32, 32, 3], 3), 32, Init::GlorotUniform, 1, true),
        &[32, 32, 3],
        false,
    );
    bench_layer(
        c,
        "cifar10-keras conv2 32x3x3+relu (6x6 Winograd tiles)",
        &mut Conv2d::new("c", g([32, 32, 32], 3), 32, Init::GlorotUniform, 1, true),
        &[32, 32, 32],
        true,
    );
    bench_layer(
        c,
        "cifar10-keras conv4 64x3x3+relu",
        &mut Conv2d::new("c", g([15, 15, 64], 3), 64, Init::GlorotUniform, 1, true),
        &[15, 15, 64],
        true,
    );
    bench_layer(
        c,
        "cifar10-tutorial conv1 32x3x3+relu (first layer)",
        &mut Conv2d::new("c", g([32, 32, 3], 3), 32, Init::GlorotUniform, 1, true),
        &[32, 32, 3],
        false,
    );
    // seed-conv and seed-logistic
    bench_layer(
        c,
        "seed-conv conv1 16x3x3+relu (first layer)",
        &mut Conv2d::new("c", g([28, 28, 1], 3), 16, Init::GlorotUniform, 1, true),
        &[28, 28, 1],
        false,
    );
    bench_layer(
        c,
        "seed-conv dense 2704x10",
        &mut Dense::new("d", 2704, 10, Init::GlorotUniform, 1),
        &[2704],
        true,
    );
    bench_layer(
        c,
        "seed-logistic dense 784x10 (first layer)",
        &mut Dense::new("d", 784, 10, Init::GlorotUniform, 1),
        &[784],
        false,
    );
}

criterion_group! {
    name = benches;
    config = Criterion::default().without_plots().sample_size(20).measurement_time(std::time::Duration::from_secs(2)).warm_up_time(std::time::Duration::from_millis(500));
    targets = layers
}
criterion_main!(benches);
