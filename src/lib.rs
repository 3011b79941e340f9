//! cnn-tui: train convolutional neural networks on the CPU and watch them learn.
//!
//! Data flows one way: [`data`] → [`nn`] → [`optim`] → [`train`] (loop, commands in, events
//! out) → front ends ([`tui`], the headless [`report`], and [`record`] for the run directory)
//! → [`cli`].

pub mod cli;
pub mod config;
pub mod data;
pub mod error;
pub mod fs;
pub mod lr;
pub mod nn;
pub mod optim;
pub mod plots;
pub mod record;
pub mod remote;
pub mod report;
pub mod rundir;
pub mod runs;
pub mod signals;
pub mod train;
pub mod tui;
pub mod weights;
