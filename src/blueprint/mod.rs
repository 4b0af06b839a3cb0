//! Embedded blueprints (minijinja templates), local overrides, per-format escaping filters.
