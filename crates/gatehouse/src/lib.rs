//! The Gatehouse binary's library: configuration, wiring and the command line, so that tests
//! build the same application the binary runs.

pub mod app;
pub mod cli;
pub mod config;

pub use app::Application;
pub use config::Config;
