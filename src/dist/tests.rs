//! A batch split over N simulated ranks gives bit for bit the gradients, loss and evaluation
//! of one process: the order in which parts are put together is the one-process order.

use super::*;
use crate::config::ModelConfig;
use crate::nn::tensor::{data, data_mut};

/// Every conv path (direct, Winograd in 4x4 and in 6x6 output tiles, patches), pooling,
/// flatten, dropout and dense layers.
fn model_text(loss: &str) -> String {
    format!(
        r#"
        loss = "{loss}"
        layers = [
          {{ type = "conv2d", filters = 6, kernel_size = 3, activation = "relu" }},
          {{ type = "conv2d", filters = 8, kernel_size = 3, activation = "relu" }},
          {{ type = "conv2d", filters = 8, kernel_size = 3, activation = "relu" }},
          {{ type = "conv2d", filters = 8, kernel_size = 5, padding = "same" }},
          {{ type = "maxpool2d", pool_size = 2 }},
          {{ type = "flatten" }},
          {{ type = "dropout", rate = 0.5 }},
          {{ type = "dense", units = 16, activation = "relu" }},
          {{ type = "dense", units = 10, activation = "softmax" }},
        ]
    "#
    )
}

fn model(loss: &str) -> Sequential {
    let spec: ModelConfig = toml::from_str(&model_text(loss)).unwrap();
    Sequential::build(&spec, [12, 12, 1], 10, 5).unwrap()
}

/// seed-conv on 28x28 images: a dense layer over 2704 inputs, where gemm gives a row other
/// bits for 64 rows than for 128 unless the rows go chunk by chunk.
fn wide_dense() -> Sequential {
    let spec: ModelConfig = toml::from_str(
        r#"layers = [
          { type = "conv2d", filters = 16, kernel_size = 3, activation = "relu" },
          { type = "maxpool2d", pool_size = 2 },
          { type = "flatten" },
          { type = "dense", units = 10, activation = "softmax" },
        ]"#,
    )
    .unwrap();
    Sequential::build(&spec, [28, 28, 1], 10, 5).unwrap()
}

/// What a run of a few SGD steps leaves: every step's loss and correct count, the final
/// parameters and the evaluation of the data, all as bits.
type Trace = (Vec<(u32, usize)>, Vec<Vec<u32>>, (u32, usize, Vec<u8>));

/// Three SGD steps on batches of `batch` samples, on rank `comm.rank()` of `comm.ranks()`;
/// `loss` "wide" is the `wide_dense` model.
fn train(comm: &dyn Collective, loss: &str, batch: usize) -> Trace {
    let (mut m, pixels) = match loss {
        "wide" => (wide_dense(), 784),
        _ => (model(loss), 144),
    };
    let samples = Split::random(3 * batch, pixels);
    let mut steps = Vec::new();
    for step in 0..3u64 {
        let indices: Vec<u32> = (0..batch as u32)
            .map(|i| (i * 7 + step as u32 * batch as u32) % (3 * batch as u32))
            .collect();
        let ctx = Context {
            train: true,
            seed: 9,
            step,
        };
        let stats = forward_backward(&mut m, comm, &samples, &indices, None, &ctx);
        steps.push((stats.loss.to_bits(), stats.correct));
        for p in m.params_mut() {
            let grad = data(&p.grad).to_vec();
            data_mut(&mut p.value)
                .iter_mut()
                .zip(grad)
                .for_each(|(v, g)| *v -= 0.05 * g);
        }
    }
    let params = m
        .params()
        .iter()
        .map(|p| data(&p.value).iter().map(|v| v.to_bits()).collect())
        .collect();
    let (eval, predictions) = evaluate(&mut m, comm, &samples);
    assert_eq!(predictions.len(), samples.len());
    (
        steps,
        params,
        (eval.loss.to_bits(), eval.correct, predictions),
    )
}

/// Runs `train` on `ranks` simulated ranks, one thread each; returns every rank's trace.
fn on_ranks(ranks: usize, loss: &str, batch: usize) -> Vec<Trace> {
    std::thread::scope(|s| {
        let handles: Vec<_> = Sim::group(ranks)
            .into_iter()
            .map(|comm| s.spawn(move || train(&comm, loss, batch)))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    })
}

#[test]
fn any_number_of_ranks_matches_one_process_bit_for_bit() {
    for loss in ["softmax_cross_entropy", "mean_squared_error", "wide"] {
        // 37 samples: chunks of 5 and a last one of 2; 128: eight chunks of 16.
        for batch in [37, 128] {
            let one = train(&Local, loss, batch);
            assert!(one.0.iter().all(|(l, _)| f32::from_bits(*l).is_finite()));
            // 9 ranks: more ranks than chunks, one of them computes nothing.
            for ranks in [1, 2, 3, 4, 8, 9] {
                for (rank, trace) in on_ranks(ranks, loss, batch).iter().enumerate() {
                    assert_eq!(
                        trace.0, one.0,
                        "{loss} {batch}: losses, rank {rank} of {ranks}"
                    );
                    assert!(
                        trace.1 == one.1,
                        "{loss} {batch}: parameters differ, rank {rank} of {ranks}"
                    );
                    assert_eq!(
                        trace.2, one.2,
                        "{loss} {batch}: evaluation, rank {rank} of {ranks}"
                    );
                }
            }
        }
    }
}

#[test]
fn a_wrong_order_would_be_seen() {
    // The test above can fail: summing the chunks' partials in another order changes bits.
    let mut m = model("softmax_cross_entropy");
    let samples = Split::random(64, 144);
    let indices: Vec<u32> = (0..64).collect();
    let ctx = Context {
        train: true,
        seed: 9,
        step: 0,
    };
    forward_backward(&mut m, &Local, &samples, &indices, None, &ctx);
    let grad_of = |m: &Sequential| data(&m.params()[2].grad).to_vec();
    let forward = grad_of(&m);
    let shards = Shard::all(64, 2);
    let mut parts = Vec::new();
    for s in &shards {
        let mut terms = Vec::new();
        m.load_batch(&samples, &indices[s.samples()]);
        m.forward_backward_shard(&ctx, s, &mut terms);
        let mut words = Vec::new();
        m.pack_grad_parts(s, &mut words);
        parts.push(words);
    }
    let reversed: Vec<&[u32]> = parts.iter().rev().map(|p| p.as_slice()).collect();
    let swapped = [shards[1], shards[0]];
    m.grads_from_parts(&swapped, &reversed);
    let backward = grad_of(&m);
    assert_ne!(
        forward.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
        backward.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
        "the conv kernel gradient summed in reverse chunk order has the same bits"
    );
    // ... while being the same numbers up to rounding.
    for (a, b) in forward.iter().zip(&backward) {
        assert!((a - b).abs() <= 1e-5 * (1.0 + a.abs()), "{a} vs {b}");
    }
}
