//! What a layer needs to build itself from its spec: the shape it receives, its place in the
//! model (for names, seeds and error messages) and the parameter budget. Each layer type has
//! a `build` that reads its spec's fields through this.

use crate::error::{Error, Result};

/// Most parameters a model may have (512 MiB of f32): a bigger one is a typo or a hostile
/// file, and is refused before anything is allocated.
pub(crate) const MAX_PARAMS: usize = 1 << 27;
/// Most values per sample in the input or any layer's output (64 MiB of f32).
pub(crate) const MAX_ELEMENTS: usize = 1 << 24;

/// `Ok(n)` when `n` is known and at most `limit`; otherwise a config error at `at`.
pub(crate) fn size_check(at: &str, what: &str, n: Option<usize>, limit: usize) -> Result<usize> {
    match n {
        Some(n) if n <= limit => Ok(n),
        Some(n) => Err(Error::config(
            at,
            format!("{what} would be {n} values; the most cnn-tui allows is {limit}"),
        )),
        None => Err(Error::config(
            at,
            format!(
                "{what} would be too large to count; the most cnn-tui allows is {limit} values"
            ),
        )),
    }
}

/// How many parameter values a model being built may have, and what says so.
#[derive(Clone, Copy)]
pub(crate) struct ParamBudget {
    pub(crate) limit: usize,
    /// False: [`MAX_PARAMS`]; true: the weights file being read, which holds `limit` values.
    pub(crate) file_values: bool,
}

/// The state of a model being built, seen by the layer being added.
pub(crate) struct Builder {
    /// The per-sample shape the next layer receives.
    pub(crate) shape: Vec<usize>,
    /// Index of the spec being built, in `model.layers`.
    pub(crate) index: usize,
    /// The model's seed.
    pub(crate) seed: u64,
    budget: ParamBudget,
    /// Parameter (and statistics) values so far.
    total: usize,
    counts: std::collections::HashMap<&'static str, usize>,
}

impl Builder {
    pub(crate) fn new(input: &[usize], seed: u64, budget: ParamBudget) -> Builder {
        Builder {
            shape: input.to_vec(),
            index: 0,
            seed,
            budget,
            total: 0,
            counts: Default::default(),
        }
    }

    /// Where errors point: `model.layers[i]`.
    pub(crate) fn at(&self) -> String {
        format!("model.layers[{}]", self.index)
    }

    /// A config error at the current layer.
    pub(crate) fn error(&self, message: impl Into<String>) -> Error {
        Error::config(self.at(), message.into())
    }

    /// The next unique name of a kind: `conv1`, `conv2`, ...
    pub(crate) fn name(&mut self, kind: &'static str) -> String {
        let n = self.counts.entry(kind).or_insert(0);
        *n += 1;
        format!("{kind}{n}")
    }

    /// The seed of the current layer's initial weights.
    pub(crate) fn layer_seed(&self) -> u64 {
        self.seed ^ (self.index as u64 + 1).wrapping_mul(0xD1B5_4A32_D192_ED03)
    }

    /// The input as an image `[h, w, c]`, or an error saying `what` needs one.
    pub(crate) fn image(&self, what: &str) -> Result<[usize; 3]> {
        match self.shape[..] {
            [h, w, c] => Ok([h, w, c]),
            _ => Err(self.error(format!(
                "{what} needs an image input (height, width, channels) but gets {:?}; put it before flatten",
                self.shape
            ))),
        }
    }

    /// The input as a flat vector's length, or an error saying `what` needs one.
    pub(crate) fn flat(&self, what: &str) -> Result<usize> {
        match self.shape[..] {
            [n] => Ok(n),
            _ => Err(self.error(format!(
                "{what} needs a flat input but gets {:?}; add {{ type = \"flatten\" }} before it",
                self.shape
            ))),
        }
    }

    /// Counts `values` more parameter values (None: too many to count) against the budget,
    /// before the layer allocates them.
    pub(crate) fn add_params(&mut self, values: Option<usize>) -> Result<()> {
        let at = self.at();
        let n = values.and_then(|p| p.checked_add(self.total));
        self.total = match n {
            Some(n) if self.budget.file_values && n > self.budget.limit => {
                return Err(Error::config(
                    at,
                    format!(
                        "the model's parameters would be at least {n} values, but the weights file holds {} (a config that does not match its tensors)",
                        self.budget.limit
                    ),
                ));
            }
            _ => size_check(&at, "the model's parameters", n, MAX_PARAMS)?,
        };
        Ok(())
    }
}
