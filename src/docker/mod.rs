//! The one place that runs docker and docker compose (through duct), and the preflight.
