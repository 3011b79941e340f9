//! cnn-tui: train convolutional neural networks on the CPU and watch them learn.
//!
//! Data flows one way: [`data`] → [`nn`] → [`optim`] → [`train`] (loop, commands in, events
//! out) → [`host`] (a run in this process: [`record`]s every event in the run directory, takes
//! command files and signals) → front ends, which only consume events and send commands
//! ([`tui`], the headless lines of [`report`]) → [`cli`].

pub mod cli;
pub mod compare;
pub mod config;
pub mod data;
pub mod dist;
pub mod error;
pub mod fs;
pub mod host;
pub mod lr;
pub mod nn;
pub mod optim;
pub mod plots;
pub(crate) mod procfs;
pub mod record;
pub mod remote;
pub mod report;
pub mod rundir;
pub mod runs;
pub mod signals;
pub mod train;
pub mod tui;
pub mod weights;
