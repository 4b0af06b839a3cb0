//! The offline images: what a machine that reaches Debian's mirror but no container registry
//! needs to run a stack. `provision images build` makes them; `provision init --offline` writes a
//! spec that uses them.
//!
//! - `<prefix>/debian:trixie`: a minbase Debian 13 made with mmdebstrap and imported; the base
//!   every image provision builds starts FROM (`images.base`).
//! - `<prefix>/consul:1.8.7`: Debian bullseye's static consul binary on that base, in place of
//!   hashicorp/consul (`images.consul`, consul-dns mode).
//! - `<prefix>/haproxy:trixie`: Debian 13's HAProxy 3.0, for checking generated configs with
//!   `haproxy -c` (the tests' static checks use it).
//!
//! The prefix is `localhost/provision-rig` (`PROVISION_RIG_PREFIX` changes it): names that no
//! registry can serve, so a local build never shadows a public image.

pub mod build;
pub mod host;
pub mod recipe;
pub mod sources;

pub use recipe::OfflineImages;
