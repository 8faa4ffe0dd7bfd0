//! The locks and shared references of the fault path, in one place, so that a model checker
//! can take their place.
//!
//! Normal builds use `spin::Mutex` (the engine is `no_std`) and `alloc::sync::Arc`. A build with
//! `--cfg loom` swaps in `loom`'s, whose every lock, unlock and reference count is a point where
//! loom interleaves threads, and then explores every interleaving of a small test
//! (`tests/loom.rs`). What is swapped is what the locking rules of `docs/core-design.md`
//! (section 1) rest on: the page-table lock, each frame's byte lock, and the frame reference
//! count that the in-place write decision reads.
//!
//! Run the model: `RUSTFLAGS="--cfg loom" cargo test -p mmprep --test loom --release`.

#[cfg(not(loom))]
pub(crate) use alloc::sync::Arc as FrameArc;
#[cfg(not(loom))]
pub(crate) use spin::Mutex;

#[cfg(loom)]
pub(crate) use loom::sync::Arc as FrameArc;
#[cfg(loom)]
pub(crate) use model::Mutex;

#[cfg(loom)]
mod model {
    use core::fmt;

    /// `loom::sync::Mutex` with `spin::Mutex`'s `lock` (no poisoning).
    pub(crate) struct Mutex<T>(loom::sync::Mutex<T>);

    impl<T> Mutex<T> {
        pub(crate) fn new(value: T) -> Mutex<T> {
            Mutex(loom::sync::Mutex::new(value))
        }
        pub(crate) fn lock(&self) -> loom::sync::MutexGuard<'_, T> {
            self.0.lock().expect("no thread panics holding an engine lock")
        }
    }

    impl<T: Default> Default for Mutex<T> {
        fn default() -> Mutex<T> {
            Mutex::new(T::default())
        }
    }

    impl<T: fmt::Debug> fmt::Debug for Mutex<T> {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.debug_tuple("Mutex").field(&*self.lock()).finish()
        }
    }
}
