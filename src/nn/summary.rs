//! A table of the model like Keras' `model.summary()`.

use super::model::Sequential;

/// One row of the summary.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LayerRow {
    pub(crate) name: String,
    pub(crate) kind: String,
    pub(crate) output_shape: Vec<usize>,
    pub(crate) params: usize,
}

pub(crate) fn summary_rows(model: &Sequential) -> Vec<LayerRow> {
    model
        .layers()
        .iter()
        .map(|l| LayerRow {
            name: l.name().to_string(),
            kind: l.kind().label().to_string(),
            output_shape: l.output_shape().to_vec(),
            // As Keras counts them: running statistics included.
            params: l
                .params()
                .iter()
                .chain(&l.buffers())
                .map(|p| p.value.len())
                .sum(),
        })
        .collect()
}

/// Formats a shape as Keras does: `(None, 26, 26, 32)`.
pub(crate) fn shape_text(shape: &[usize]) -> String {
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    format!("(None, {})", dims.join(", "))
}

/// Thousands separators, as Keras prints parameter counts.
pub(crate) fn grouped(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// The whole table as plain text (ASCII only, fits 80 columns).
pub fn summary_table(model: &Sequential) -> String {
    let rows = summary_rows(model);
    let [h, w, c] = model.input_shape();
    let mut out = String::new();
    let line = "-".repeat(66);
    out.push_str(&format!(
        "{:<30}{:<24}{:>12}\n",
        "Layer (type)", "Output Shape", "Param #"
    ));
    out.push_str(&format!("{}\n", "=".repeat(66)));
    out.push_str(&format!(
        "{:<30}{:<24}{:>12}\n",
        "input (Input)",
        shape_text(&[h, w, c]),
        0
    ));
    for r in &rows {
        out.push_str(&format!(
            "{:<30}{:<24}{:>12}\n",
            format!("{} ({})", r.name, r.kind),
            shape_text(&r.output_shape),
            grouped(r.params as u64)
        ));
    }
    out.push_str(&format!("{}\n", "=".repeat(66)));
    let trainable = model.param_count() as u64;
    let total = model.tensors().iter().map(|p| p.value.len() as u64).sum();
    out.push_str(&format!(
        "Total params: {} ({:.2} KB)\n",
        grouped(total),
        total as f64 * 4.0 / 1024.0
    ));
    out.push_str(&format!("Trainable params: {}\n", grouped(trainable)));
    if total > trainable {
        out.push_str(&format!(
            "Non-trainable params: {}\n",
            grouped(total - trainable)
        ));
    }
    let f = model.forward_flops();
    out.push_str(&format!(
        "FLOPs per sample: {:.2} M forward, {:.2} M training step (forward + backward)\n",
        f as f64 / 1e6,
        3.0 * f as f64 / 1e6
    ));
    out.push_str(&line);
    out.push('\n');
    out
}
