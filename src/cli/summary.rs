//! `cnn-tui summary`: the model table, like Keras' `model.summary()`.

use super::args::SummaryArgs;
use super::{LoadedConfig, exit, load_config};
use crate::data::{DataSource, Dataset};
use crate::error::Result;
use crate::nn::{Sequential, summary_table};

pub(crate) fn run(args: SummaryArgs) -> Result<u8> {
    let LoadedConfig {
        config,
        name,
        origin,
    } = load_config(args.config.config.as_deref(), &args.config.set)?;
    let source = DataSource::resolve(args.config.data.as_ref(), &config);
    // The bundled data is MNIST; other data is read to learn its image shape and classes.
    let (shape, classes) = match &source {
        DataSource::Bundled => ([28, 28, 1], 10),
        dir => {
            let d = Dataset::load(dir, &config.data, 0.0)?;
            (d.image_shape, d.classes)
        }
    };
    let model = Sequential::build(&config.model, shape, classes, config.training.seed)
        .map_err(|e| e.in_config(&origin))?;
    println!("Model: \"{name}\"");
    print!("{}", summary_table(&model));
    println!(
        "Optimizer: {} lr {}",
        config.optimizer.label(),
        config.optimizer.lr()
    );
    let t = &config.training;
    println!(
        "Training: {} epochs, batch {}, validation split {}, seed {}",
        t.epochs, t.batch_size, t.validation_split, t.seed
    );
    Ok(exit::OK)
}
