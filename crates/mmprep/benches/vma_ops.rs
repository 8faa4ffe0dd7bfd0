//! Engine benchmarks: lookup, mmap, munmap and mprotect in address spaces of 1K, 64K and 1M
//! VMAs.
//!
//! The layout is N one-page VMAs with a one-page hole after each (so nothing merges), starting at
//! the scenario window base. Every measured step leaves the layout as it found it:
//! - `lookup`: `vma_at` of an address in the middle;
//! - `mmap+munmap`: map a page into a hole (it merges with both neighbours if they match, so the
//!   neighbours alternate protections to keep them apart), then unmap it;
//! - `munmap+mmap`: unmap a mapped page, then map it again;
//! - `mprotect split+merge`: make a page of a three-page VMA read-only (split in three), then
//!   read-write again (merge back).
//!
//! Engine-versus-host ratios for one identical op stream: `mmprep bench`.

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use mmprep::{MapFlags, Mm, Profile, Prot, VirtAddr};

const BASE: u64 = 0x2000_0000_0000;
const PAGE: u64 = 4096;

fn flags() -> MapFlags {
    MapFlags::PRIVATE | MapFlags::ANONYMOUS | MapFlags::FIXED
}

/// N VMAs: page 2i is mapped (rw- or r-- alternately), page 2i+1 is a hole; the last VMA is
/// three pages long (for the mprotect bench).
fn layout(n: u64) -> Mm {
    let profile = Profile {
        max_map_count: u64::MAX,
        ..Profile::reference_host()
    };
    let mut mm = Mm::new(profile);
    for i in 0..n {
        let prot = if i.is_multiple_of(2) { Prot::RW } else { Prot::READ };
        let len = if i == n - 1 { 3 * PAGE } else { PAGE };
        mm.mmap(VirtAddr(BASE + 2 * i * PAGE), len, prot, flags(), None, 0)
            .expect("layout mmap");
    }
    assert_eq!(mm.vmas().count() as u64, n);
    mm
}

fn bench(c: &mut Criterion) {
    for &n in &[1_000u64, 64_000, 1_000_000] {
        let mut mm = layout(n);
        let mid = BASE + 2 * (n / 2) * PAGE;
        let hole = mid + PAGE;
        let last = BASE + 2 * (n - 1) * PAGE;
        let mut g = c.benchmark_group("engine");
        g.bench_with_input(BenchmarkId::new("lookup", n), &n, |b, _| {
            b.iter(|| black_box(mm.vma_at(VirtAddr(black_box(mid)))).is_some())
        });
        g.bench_with_input(BenchmarkId::new("mmap+munmap", n), &n, |b, _| {
            b.iter(|| {
                mm.mmap(VirtAddr(hole), PAGE, Prot::EXEC, flags(), None, 0).unwrap();
                mm.munmap(VirtAddr(hole), PAGE).unwrap();
            })
        });
        g.bench_with_input(BenchmarkId::new("munmap+mmap", n), &n, |b, _| {
            let prot = if (n / 2) % 2 == 0 { Prot::RW } else { Prot::READ };
            b.iter(|| {
                mm.munmap(VirtAddr(mid), PAGE).unwrap();
                mm.mmap(VirtAddr(mid), PAGE, prot, flags(), None, 0).unwrap();
            })
        });
        g.bench_with_input(BenchmarkId::new("mprotect split+merge", n), &n, |b, _| {
            let prot = if (n - 1) % 2 == 0 { Prot::RW } else { Prot::READ };
            let other = if prot == Prot::RW { Prot::READ } else { Prot::RW };
            b.iter(|| {
                mm.mprotect(VirtAddr(last + PAGE), PAGE, other).unwrap();
                mm.mprotect(VirtAddr(last + PAGE), PAGE, prot).unwrap();
            })
        });
        g.finish();
        assert_eq!(
            mm.vmas().count() as u64,
            n,
            "benchmarks leave the layout as they found it"
        );
        mm.check_invariants();
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20).measurement_time(std::time::Duration::from_secs(2));
    targets = bench
}
criterion_main!(benches);
