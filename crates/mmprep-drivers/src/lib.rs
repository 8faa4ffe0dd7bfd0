//! Example drivers.
