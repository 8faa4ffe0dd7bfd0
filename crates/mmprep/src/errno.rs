//! Error numbers, and the error value every fallible engine call returns.
//!
//! A Linux system call fails with one negative number; the number alone rarely tells a person
//! *why*. The engine therefore returns an [`Error`]: the kernel's [`Errno`] (what a transcript
//! prints and what a caller branches on) plus a short static reason (what a human reads).
//!
//! Numbers and names are those of `include/uapi/asm-generic/errno-base.h` and
//! `include/uapi/asm-generic/errno.h` on x86_64, host kernel \[H\] 6.18.

use core::fmt;
use core::panic::Location;

macro_rules! errnos {
    ($($name:ident = $num:literal, $text:literal;)*) => {
        /// A kernel error number, named as in the uapi headers.
        #[allow(clippy::upper_case_acronyms)]
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[repr(i32)]
        pub enum Errno {
            $(#[doc = $text] $name = $num,)*
        }

        impl Errno {
            /// Every error number this crate knows, in numeric order.
            pub const ALL: &'static [Errno] = &[$(Errno::$name,)*];

            /// The positive error number (`EINVAL` is 22).
            pub const fn raw(self) -> i32 {
                self as i32
            }

            /// The symbolic name without sign (`"EINVAL"`).
            pub const fn name(self) -> &'static str {
                match self {
                    $(Errno::$name => stringify!($name),)*
                }
            }

            /// The `strerror` text (`"Invalid argument"`).
            pub const fn description(self) -> &'static str {
                match self {
                    $(Errno::$name => $text,)*
                }
            }

            /// The error with this positive number, if this crate knows it.
            pub const fn from_raw(raw: i32) -> Option<Errno> {
                match raw {
                    $($num => Some(Errno::$name),)*
                    _ => None,
                }
            }
        }
    };
}

errnos! {
    EPERM = 1, "Operation not permitted";
    ENOENT = 2, "No such file or directory";
    EINTR = 4, "Interrupted system call";
    EIO = 5, "Input/output error";
    ENXIO = 6, "No such device or address";
    E2BIG = 7, "Argument list too long";
    ENOEXEC = 8, "Exec format error";
    EBADF = 9, "Bad file descriptor";
    EAGAIN = 11, "Resource temporarily unavailable";
    ENOMEM = 12, "Cannot allocate memory";
    EACCES = 13, "Permission denied";
    EFAULT = 14, "Bad address";
    EBUSY = 16, "Device or resource busy";
    EEXIST = 17, "File exists";
    ENODEV = 19, "No such device";
    EINVAL = 22, "Invalid argument";
    ETXTBSY = 26, "Text file busy";
    EFBIG = 27, "File too large";
    ENOSPC = 28, "No space left on device";
    ENOSYS = 38, "Function not implemented";
    EOVERFLOW = 75, "Value too large for defined data type";
    EOPNOTSUPP = 95, "Operation not supported";
    ENOTSUPP = 524, "Operation is not supported (kernel-internal)";
}

impl fmt::Display for Errno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A failed engine call: the kernel's error number plus a reason for humans.
///
/// Transcripts print only [`Error::errno`]; verbose output and test failures add
/// [`Error::reason`]. The reason never names the syscall or the scenario line: the caller adds
/// that context once. [`Error::site`] names the kernel function that makes the same check
/// (`mmprep run --why`).
///
/// Two errors are equal when their number, reason and driver are: where they were made
/// ([`Error::at`]) is not part of their value.
#[derive(Clone, Copy, Debug)]
pub struct Error {
    /// What the kernel returns.
    pub errno: Errno,
    /// Why, in a few words ("offset is not page aligned").
    pub reason: &'static str,
    /// The driver (its `FileOperations::name`) whose hook broke a rule the engine keeps, when
    /// the error is that driver's fault rather than the caller's (`mm/mmap.rs`,
    /// `check_prepared_flags`). `None` for every other error.
    pub driver: Option<&'static str>,
    /// Where in the Rust source the error was made: the call of [`Error::new`] (or of the
    /// engine's `err`), recorded by `#[track_caller]`. [`Error::site`] turns it into a kernel
    /// function.
    pub at: &'static Location<'static>,
}

impl PartialEq for Error {
    fn eq(&self, other: &Error) -> bool {
        (self.errno, self.reason, self.driver) == (other.errno, other.reason, other.driver)
    }
}

impl Eq for Error {}

impl Error {
    /// An error with its reason, made here ([`Error::at`] is the caller's location).
    #[track_caller]
    pub const fn new(errno: Errno, reason: &'static str) -> Error {
        Error {
            errno,
            reason,
            driver: None,
            at: Location::caller(),
        }
    }

    /// The kernel function that makes the check this error comes from, as
    /// `path/file.c:function` (`"mm/mmap.c:do_mmap"`), or `None` when the error was made
    /// outside the engine (by a driver's hook: [`Error::at`] says where).
    ///
    /// Each engine function that fails has its kernel counterpart in one table
    /// ([`crate::site`]); a unit test checks that every error the engine makes finds its entry.
    pub fn site(&self) -> Option<&'static str> {
        crate::site::kernel_function(self.at.file(), self.at.line())
    }

    /// The same error, blamed on the driver `name`.
    pub const fn by_driver(self, name: &'static str) -> Error {
        Error {
            driver: Some(name),
            ..self
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.driver {
            Some(d) => write!(f, "{} (driver `{d}`: {})", self.errno, self.reason),
            None => write!(f, "{} ({})", self.errno, self.reason),
        }
    }
}

impl core::error::Error for Error {}

impl From<Error> for Errno {
    fn from(e: Error) -> Errno {
        e.errno
    }
}

/// Shorthand used all over the engine: `Err(err(EINVAL, "why"))`. The error records where it
/// was called ([`Error::at`]).
#[track_caller]
pub(crate) const fn err(errno: Errno, reason: &'static str) -> Error {
    Error::new(errno, reason)
}

/// The engine's result type.
pub type Result<T, E = Error> = core::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_and_names_round_trip() {
        for &e in Errno::ALL {
            assert_eq!(Errno::from_raw(e.raw()), Some(e));
        }
        assert_eq!(Errno::EINVAL.raw(), 22);
        assert_eq!(Errno::EOPNOTSUPP.name(), "EOPNOTSUPP");
        assert_eq!(Errno::from_raw(0), None);
    }
}
