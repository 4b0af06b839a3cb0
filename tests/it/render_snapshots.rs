//! render_snapshots tests.
