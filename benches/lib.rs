//! Shared helpers for the criterion benches (see the `[[bench]]` targets).
