//! static_checks tests.
