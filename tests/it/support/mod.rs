//! What the integration tests share: the harness (a temporary project, the built binary, the
//! skip rule), the Docker engine the end-to-end tests take in turn, a stack owned by one test,
//! and what the deploy tests of both targets share.

pub mod deploys;
pub mod engine;
pub mod fixtures;
pub mod harness;
pub mod picture;
pub mod secrets;
pub mod stack;
