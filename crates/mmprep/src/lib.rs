//! mmprep: the Linux mmap layer, rebuilt in userspace.
#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;

pub mod errno;
pub mod uapi;

pub use errno::{Errno, Error, Result};
pub use uapi::{MapFlags, Prot};
pub mod profile;
pub use profile::Profile;
