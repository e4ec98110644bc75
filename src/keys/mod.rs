//! Key lifecycle (work in progress).
