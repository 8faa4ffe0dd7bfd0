//! The backend's ops applied to a fake host (a page map with contents): after every call the
//! host must hold what the engine holds (mapped pages, protections, backings, and the bytes
//! `Mm::read` gives), and no page mapped both before and after a call may be unmapped by any
//! op in between (the ordering rule of `mmprep::backend`).
//!
//! Columns in the pictures are 4 KiB pages above `BASE`. `MMPREP_TRACE_OPS=1` prints each
//! call, its ops and the maps after it.

mod common;

use std::collections::{BTreeMap, BTreeSet, HashMap};

use common::{BASE, new_mm, page, pages};
use mmprep::abi::{FdTable, Outcome, nr};
use mmprep::backend::{Backend, Backing, Conflict, FileId, GuestPiece, HostMapping, HostOp, Planner, Sharing};
use mmprep::flags::VmaBit;
use mmprep::mm::MmBounds;
use mmprep::{Mm, Prot, VirtAddr};

const PG: u64 = 4096;

/// One 4 KiB page of the fake host.
#[derive(Clone, Debug)]
struct HostPage {
    prot: Prot,
    backing: Backing,
    /// Own bytes (anonymous memory written, or a private copy of a file page); `None`: zero
    /// for anonymous memory, the file's bytes for a file mapping.
    data: Option<Vec<u8>>,
}

/// A host with `granule`-byte pages, stored per 4 KiB so that byte ops can be checked.
struct FakeHost {
    granule: u64,
    pages: BTreeMap<u64, HostPage>,
    /// Shared file contents, per (file, page offset in bytes).
    files: HashMap<(FileId, u64), Vec<u8>>,
    conflicts: Vec<Conflict>,
    /// The ops of the current call, as received.
    applied: Vec<HostOp>,
    /// The mapped pages after each op of the current call.
    trail: Vec<BTreeSet<u64>>,
}

impl FakeHost {
    fn new(granule: u64) -> FakeHost {
        FakeHost {
            granule,
            pages: BTreeMap::new(),
            files: HashMap::new(),
            conflicts: Vec::new(),
            applied: Vec::new(),
            trail: Vec::new(),
        }
    }

    fn aligned(&self, a: VirtAddr, len: u64) {
        assert!(
            a.0.is_multiple_of(self.granule) && len.is_multiple_of(self.granule),
            "op at {a:?} + {len:#x} is not on whole granules of {:#x}",
            self.granule
        );
    }

    fn bytes(&self, addr: u64) -> Vec<u8> {
        let p = self
            .pages
            .get(&addr)
            .unwrap_or_else(|| panic!("host page {addr:#x} is not mapped"));
        if let Some(d) = &p.data {
            return d.clone();
        }
        match p.backing {
            Backing::Anon => vec![0; PG as usize],
            Backing::File { file, offset, .. } => self
                .files
                .get(&(file, offset))
                .cloned()
                .unwrap_or_else(|| vec![0; PG as usize]),
        }
    }

    /// A store (by the guest, or a data op), ignoring the protection.
    fn store(&mut self, addr: u64, data: &[u8]) {
        let room = (PG - addr % PG) as usize;
        if data.is_empty() {
            return;
        }
        if data.len() > room {
            self.store(addr, &data[..room]);
            return self.store(addr + room as u64, &data[room..]);
        }
        let base = addr & !(PG - 1);
        let mut b = self.bytes(base);
        let off = (addr - base) as usize;
        b[off..off + data.len()].copy_from_slice(data);
        let p = self.pages.get_mut(&base).expect("store to a mapped host page");
        match p.backing {
            Backing::File {
                file,
                offset,
                sharing: Sharing::Shared,
            } => {
                self.files.insert((file, offset), b);
            }
            _ => p.data = Some(b),
        }
    }
}

impl Backend for FakeHost {
    fn apply(&mut self, op: &HostOp) -> Result<(), i32> {
        match *op {
            HostOp::Map {
                start,
                end,
                prot,
                backing,
            } => {
                self.aligned(start, end.0 - start.0);
                for a in (start.0..end.0).step_by(PG as usize) {
                    let backing = backing.advanced(a - start.0);
                    self.pages.insert(
                        a,
                        HostPage {
                            prot,
                            backing,
                            data: None,
                        },
                    );
                }
            }
            HostOp::Unmap { start, end } => {
                self.aligned(start, end.0 - start.0);
                for a in (start.0..end.0).step_by(PG as usize) {
                    self.pages.remove(&a);
                }
            }
            HostOp::Protect { start, end, prot } => {
                self.aligned(start, end.0 - start.0);
                for a in (start.0..end.0).step_by(PG as usize) {
                    self.pages.get_mut(&a).ok_or(12)?.prot = prot;
                }
            }
            HostOp::Zap { start, end } => {
                self.aligned(start, end.0 - start.0);
                for a in (start.0..end.0).step_by(PG as usize) {
                    let p = self.pages.get_mut(&a).ok_or(12)?;
                    if p.backing.is_private() {
                        p.data = None;
                    }
                }
            }
            HostOp::Zero { start, end } => {
                for a in (start.0..end.0).step_by(PG as usize) {
                    self.store(a, &[0; PG as usize]);
                }
            }
            HostOp::Move {
                from,
                to,
                len,
                keep_source,
            } => {
                self.aligned(from, len);
                self.aligned(to, len);
                let moved: Vec<(u64, HostPage)> = (0..len)
                    .step_by(PG as usize)
                    .filter_map(|o| self.pages.get(&(from.0 + o)).map(|p| (o, p.clone())))
                    .collect();
                for o in (0..len).step_by(PG as usize) {
                    if keep_source {
                        if let Some(p) = self.pages.get_mut(&(from.0 + o))
                            && p.backing.is_private()
                        {
                            p.data = None;
                        }
                    } else {
                        self.pages.remove(&(from.0 + o));
                    }
                    self.pages.remove(&(to.0 + o));
                }
                for (o, p) in moved {
                    self.pages.insert(to.0 + o, p);
                }
            }
            HostOp::Copy { from, to, len } => {
                let data: Vec<Vec<u8>> = (0..len).step_by(PG as usize).map(|o| self.bytes(from.0 + o)).collect();
                for (i, d) in data.iter().enumerate() {
                    self.store(to.0 + i as u64 * PG, d);
                }
            }
        }
        self.applied.push(*op);
        self.trail.push(self.pages.keys().copied().collect());
        Ok(())
    }

    fn conflict(&mut self, conflict: &Conflict) {
        self.conflicts.push(conflict.clone());
    }
}

/// The engine, a fake host, and the planner between them.
struct Rig {
    mm: Mm,
    fds: FdTable,
    host: FakeHost,
    planner: Planner,
    /// The pages the checks compare: `[BASE, BASE + WINDOW)` and the heap.
    windows: Vec<(u64, u64)>,
}

const WINDOW: u64 = 64 * PG;

impl Rig {
    fn new(granule: u64) -> Rig {
        Rig {
            mm: new_mm(),
            fds: FdTable::new(),
            host: FakeHost::new(granule),
            planner: Planner::new(PG, granule).unwrap(),
            windows: vec![(BASE, BASE + WINDOW)],
        }
    }

    /// Runs one call through the planner into the fake host, checks the ordering rule and
    /// the host against the engine, and returns the call's value and its ops.
    fn call(&mut self, nr: u64, args: [u64; 6]) -> (u64, Vec<HostOp>) {
        let before: BTreeSet<u64> = self.host.pages.keys().copied().collect();
        self.host.trail.clear();
        self.host.applied.clear();
        self.host.conflicts.clear();
        if std::env::var_os("MMPREP_TRACE_OPS").is_some() {
            eprintln!("CALL {nr} {args:x?}");
        }
        let outcome = self
            .planner
            .syscall(&mut self.mm, &self.fds, nr, args, &mut self.host)
            .expect("planned and applied");
        let ops = self.host.applied.clone();
        if std::env::var_os("MMPREP_TRACE_OPS").is_some() {
            eprintln!("  -> {outcome:x?}\n  ops {ops:x?}\n{}", self.mm.maps());
        }
        let after: BTreeSet<u64> = self.host.pages.keys().copied().collect();
        let kept: BTreeSet<u64> = before.intersection(&after).copied().collect();
        for (i, mapped) in self.host.trail.iter().enumerate() {
            let hole: Vec<_> = kept.difference(mapped).take(4).collect();
            assert!(
                hole.is_empty(),
                "op {i} ({:?}) unmaps {hole:x?}, mapped before and after the call",
                ops[i]
            );
        }
        self.mm.check_invariants();
        self.check();
        let Outcome::Return(v) = outcome else {
            panic!("{nr} did not run")
        };
        (v, ops)
    }

    /// The host equals the engine over the windows: every guest page mapped in the model is
    /// mapped on the host with the protection (exactly, or a superset on a larger granule),
    /// the backing, and the bytes `Mm::read` gives; a granule with no guest page is unmapped.
    fn check(&mut self) {
        let exact = self.host.granule == PG;
        for (s, e) in self.windows.clone() {
            for a in (s..e).step_by(PG as usize) {
                let want = self.mm.vma_at(VirtAddr(a)).map(|v| {
                    let mut prot = Prot::NONE;
                    for (b, p) in [
                        (VmaBit::Read, Prot::READ),
                        (VmaBit::Write, Prot::WRITE),
                        (VmaBit::Exec, Prot::EXEC),
                    ] {
                        if v.test(b) {
                            prot = prot.union(p);
                        }
                    }
                    let shared = v.test(VmaBit::Shared);
                    (prot, shared && !v.is_anonymous())
                });
                let got = self.host.pages.get(&a).cloned();
                match (want, got) {
                    (None, None) => {}
                    (None, Some(_)) if !exact => {
                        let g = a & !(self.host.granule - 1);
                        assert!(
                            self.mm
                                .vmas_in(VirtAddr(g), VirtAddr(g + self.host.granule))
                                .next()
                                .is_some(),
                            "host granule at {g:#x} mapped with no guest page in it"
                        );
                    }
                    (Some((prot, shared)), Some(h)) => {
                        if exact {
                            assert_eq!(h.prot, prot, "protection at {a:#x}");
                        } else {
                            assert!(h.prot.contains(prot), "host prot {:?} at {a:#x} lacks {prot:?}", h.prot);
                        }
                        let host_shared = !h.backing.is_private();
                        if exact {
                            assert_eq!(host_shared, shared, "sharing at {a:#x}");
                        }
                        if prot.contains(Prot::READ) {
                            let mut buf = vec![0u8; PG as usize];
                            self.mm.read(VirtAddr(a), &mut buf).expect("readable in the model");
                            assert!(self.host.bytes(a) == buf, "bytes of the page at {a:#x} differ");
                        }
                    }
                    (w, g) => panic!("page {a:#x}: model {w:?}, host {g:?}"),
                }
            }
        }
    }

    /// A guest store, done on both sides.
    fn store(&mut self, addr: VirtAddr, data: &[u8]) {
        self.mm.write(addr, data).expect("model store");
        self.host.store(addr.0, data);
    }
}

const RW: u64 = 3;
const R: u64 = 1;
const ANON_FIXED: u64 = 0x32; // MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED
const SHARED_FIXED: u64 = 0x11; // MAP_SHARED | MAP_FIXED

/// A pattern byte per page, so that a page in the wrong place shows.
fn fill(rig: &mut Rig, from: u64, to: u64, tag: u8) {
    for p in from..to {
        rig.store(VirtAddr(page(p).0 + 100), &[tag.wrapping_add(p as u8); 32]);
    }
}

/// mmap (a `MAP_FIXED` over several mappings is one map op), mprotect, madvise(DONTNEED),
/// munmap, on 4 KiB granules: after each call the host is the model.
#[test]
fn map_protect_zap_unmap_on_a_page_sized_host() {
    let mut rig = Rig::new(PG);
    let memfd = rig.mm.shmem().memfd_create("guest", pages(8));
    rig.fds.insert(3, memfd.clone());
    let mf = FileId {
        dev: memfd.inode().dev(),
        ino: memfd.inode().ino(),
    };

    // 01234567
    // AAAAAAAA      anonymous rw-, written
    let (a, ops) = rig.call(nr::MMAP, [BASE, pages(8), RW, ANON_FIXED, u64::MAX, 0]);
    assert_eq!(a, BASE);
    assert_eq!(
        ops,
        [HostOp::Map {
            start: page(0),
            end: page(8),
            prot: Prot::RW,
            backing: Backing::Anon
        }]
    );
    fill(&mut rig, 0, 8, 0x10);

    //   ^^^^        memfd shared over pages 2..6 (MAP_FIXED across written anonymous memory)
    // AAmmmmAA
    rig.call(nr::MMAP, [page(2).0, pages(4), RW, SHARED_FIXED, 3, 0]);
    fill(&mut rig, 2, 6, 0x40);

    //  <---------   MAP_FIXED anonymous over anon, memfd, anon and a hole at 8..10: ONE op
    // BBBBBBBBBB
    let (_, ops) = rig.call(nr::MMAP, [page(0).0, pages(10), RW, ANON_FIXED, u64::MAX, 0]);
    assert_eq!(
        ops,
        [HostOp::Map {
            start: page(0),
            end: page(10),
            prot: Prot::RW,
            backing: Backing::Anon
        }]
    );
    fill(&mut rig, 0, 10, 0x20);

    //   ^^^^        the memfd again, at file page 1; its bytes written before are still there
    // BBmmmmBBBB
    let (_, ops) = rig.call(nr::MMAP, [page(2).0, pages(4), RW, SHARED_FIXED, 3, pages(1)]);
    assert_eq!(
        ops,
        [HostOp::Map {
            start: page(2),
            end: page(6),
            prot: Prot::RW,
            backing: Backing::File {
                file: mf,
                offset: pages(1),
                sharing: Sharing::Shared
            }
        }]
    );

    //  ^^           r-- over anonymous page 1 and memfd page 2: one protect
    // BbmmmmBBBB
    let (_, ops) = rig.call(nr::MPROTECT, [page(1).0, pages(2), R, 0, 0, 0]);
    assert_eq!(
        ops,
        [HostOp::Protect {
            start: page(1),
            end: page(3),
            prot: Prot::READ
        }]
    );

    // <--------->   DONTNEED everything: anonymous pages read zero, the memfd keeps its bytes
    let (r, ops) = rig.call(nr::MADVISE, [page(0).0, pages(10), 4, 0, 0, 0]);
    assert_eq!(r, 0);
    assert_eq!(
        ops,
        [HostOp::Zap {
            start: page(0),
            end: page(10)
        }]
    );
    let mut b = [0xffu8; 1];
    rig.mm.read(VirtAddr(page(0).0 + 100), &mut b).unwrap();
    assert_eq!(b, [0]);

    //       ^^^^    munmap 6..10, and a second time: nothing left to do
    // BbmmmmBB..
    let (_, ops) = rig.call(nr::MUNMAP, [page(6).0, pages(4), 0, 0, 0, 0]);
    assert_eq!(
        ops,
        [HostOp::Unmap {
            start: page(6),
            end: page(10)
        }]
    );
    let (_, ops) = rig.call(nr::MUNMAP, [page(6).0, pages(4), 0, 0, 0, 0]);
    assert!(ops.is_empty());

    // mprotect over the hole: ENOMEM after the VMAs before it changed (mm/mprotect.c).
    let (r, ops) = rig.call(nr::MPROTECT, [page(4).0, pages(6), R, 0, 0, 0]);
    assert_eq!(r as i64, -12);
    assert_eq!(
        ops,
        [HostOp::Protect {
            start: page(4),
            end: page(6),
            prot: Prot::READ
        }]
    );

    // A non-fixed mmap lands somewhere else: one map there.
    let (a, ops) = rig.call(nr::MMAP, [0, pages(3), RW, 0x22, u64::MAX, 0]);
    assert_eq!(
        ops,
        [HostOp::Map {
            start: VirtAddr(a),
            end: VirtAddr(a + pages(3)),
            prot: Prot::RW,
            backing: Backing::Anon
        }]
    );
    rig.windows.push((a, a + pages(3)));
    rig.store(VirtAddr(a + 5), b"nonfixed");
    rig.check();

    // mremap with old_len 0 of shared memory: a second mapping of the same memfd pages
    // (mm/mremap.c), mapped by one op, showing the bytes written through the first.
    // Page 3 is the memfd's page 2, still rw-.
    let (b, ops) = rig.call(nr::MREMAP, [page(3).0, 0, pages(1), 1, 0, 0]);
    assert_eq!(
        ops,
        [HostOp::Map {
            start: VirtAddr(b),
            end: VirtAddr(b + pages(1)),
            prot: Prot::RW,
            backing: Backing::File {
                file: mf,
                offset: pages(2),
                sharing: Sharing::Shared
            }
        }]
    );
    rig.windows.push((b, b + pages(1)));
    rig.store(VirtAddr(b + 9), b"through the copy");
    rig.check();
}

/// mremap: grow in place (the tail is mapped), a move with growth (one move, then the tail),
/// a MREMAP_FIXED move onto live memory (one move, no hole), a shrink, and DONTUNMAP.
#[test]
fn mremap_grow_move_fixed_shrink_dontunmap() {
    let mut rig = Rig::new(PG);
    // 0123456789
    // AA            two written pages
    rig.call(nr::MMAP, [page(0).0, pages(2), RW, ANON_FIXED, u64::MAX, 0]);
    fill(&mut rig, 0, 2, 0x30);

    // AAaa          grow in place to four pages: the tail is mapped afresh
    let (r, ops) = rig.call(nr::MREMAP, [page(0).0, pages(2), pages(4), 0, 0, 0]);
    assert_eq!(r, page(0).0);
    assert_eq!(
        ops,
        [HostOp::Map {
            start: page(2),
            end: page(4),
            prot: Prot::RW,
            backing: Backing::Anon
        }]
    );
    fill(&mut rig, 2, 4, 0x50);

    // AAAA X        a blocker at page 5 forces a move to grow to eight pages
    rig.call(nr::MMAP, [page(5).0, pages(1), R, ANON_FIXED, u64::MAX, 0]);
    let (to, ops) = rig.call(nr::MREMAP, [page(0).0, pages(4), pages(8), 1, 0, 0]);
    assert_ne!(to, page(0).0);
    assert_eq!(
        ops,
        [
            HostOp::Move {
                from: page(0),
                to: VirtAddr(to),
                len: pages(4),
                keep_source: false
            },
            HostOp::Map {
                start: VirtAddr(to + pages(4)),
                end: VirtAddr(to + pages(8)),
                prot: Prot::RW,
                backing: Backing::Anon
            }
        ]
    );
    rig.windows.push((to, to + pages(8)));
    rig.check();

    // Back with MREMAP_FIXED over pages 4..12, live memory (page 5) included: one move
    // replaces it, and the pages that were mapped there never go unmapped.
    rig.call(nr::MMAP, [page(4).0, pages(8), RW, ANON_FIXED, u64::MAX, 0]);
    fill(&mut rig, 4, 12, 0x70);
    let (r, ops) = rig.call(nr::MREMAP, [to, pages(8), pages(8), 3, page(4).0, 0]);
    assert_eq!(r, page(4).0);
    assert_eq!(
        ops,
        [HostOp::Move {
            from: VirtAddr(to),
            to: page(4),
            len: pages(8),
            keep_source: false
        }]
    );

    // Shrink in place: the tail goes.
    let (_, ops) = rig.call(nr::MREMAP, [page(4).0, pages(8), pages(6), 0, 0, 0]);
    assert_eq!(
        ops,
        [HostOp::Unmap {
            start: page(10),
            end: page(12)
        }]
    );

    // MREMAP_DONTUNMAP to page 20: the source stays mapped and reads zero.
    let (r, ops) = rig.call(nr::MREMAP, [page(4).0, pages(6), pages(6), 1 | 2 | 4, page(20).0, 0]);
    assert_eq!(r, page(20).0);
    assert_eq!(
        ops,
        [HostOp::Move {
            from: page(4),
            to: page(20),
            len: pages(6),
            keep_source: true
        }]
    );
}

/// brk: growth is mapped, a shrink unmapped, and regrown memory reads zero.
#[test]
fn brk_grows_and_shrinks() {
    let mut rig = Rig::new(PG);
    let heap = BASE + pages(32);
    rig.mm
        .set_bounds(MmBounds {
            start_data: BASE,
            end_data: BASE + 100,
            start_brk: heap,
            brk: heap,
            start_stack: 0x7fff_0000_0000,
        })
        .unwrap();
    let (r, ops) = rig.call(nr::BRK, [heap + pages(3) - 10, 0, 0, 0, 0, 0]);
    assert_eq!(r, heap + pages(3) - 10);
    assert_eq!(
        ops,
        [HostOp::Map {
            start: VirtAddr(heap),
            end: VirtAddr(heap + pages(3)),
            prot: Prot::RW,
            backing: Backing::Anon
        }]
    );
    rig.store(VirtAddr(heap + pages(2) + 8), b"heap");
    let (_, ops) = rig.call(nr::BRK, [heap + pages(1), 0, 0, 0, 0, 0]);
    assert_eq!(
        ops,
        [HostOp::Unmap {
            start: VirtAddr(heap + pages(1)),
            end: VirtAddr(heap + pages(3))
        }]
    );
    let (_, ops) = rig.call(nr::BRK, [heap + pages(4), 0, 0, 0, 0, 0]);
    assert_eq!(ops.len(), 1);
    let mut b = [0xffu8; 4];
    rig.mm.read(VirtAddr(heap + pages(2) + 8), &mut b).unwrap();
    assert_eq!(b, [0; 4]);
    // A failed brk (below start_brk) changes nothing.
    let (_, ops) = rig.call(nr::BRK, [BASE, 0, 0, 0, 0, 0]);
    assert!(ops.is_empty());
}

/// A 4 KiB guest on a 16 KiB-granule host: mixed protections inside one host page are
/// reported as a conflict, with each guest piece and what it wants, and the granule gets the
/// union; a piece unmapped inside a live granule is a conflict too, and the granule goes only
/// with its last guest page.
#[test]
fn mixed_protections_in_one_16k_granule_are_a_conflict() {
    let mut rig = Rig::new(4 * PG);
    // 0123|4567     one column per 4 KiB guest page; | marks the 16 KiB granules
    // AAAA|AAAA
    let (_, ops) = rig.call(nr::MMAP, [BASE, pages(8), RW, ANON_FIXED, u64::MAX, 0]);
    assert_eq!(ops.len(), 1);
    assert!(rig.host.conflicts.is_empty());
    fill(&mut rig, 0, 8, 0x11);

    //  ^            page 1 r--: granule 0 holds rw- and r-- pages
    // AaAA|AAAA
    let (r, ops) = rig.call(nr::MPROTECT, [page(1).0, pages(1), R, 0, 0, 0]);
    assert_eq!(r, 0);
    assert!(ops.is_empty(), "the union stays rw-: {ops:?}");
    let rw = HostMapping {
        prot: Prot::RW,
        backing: Backing::Anon,
    };
    let ro = HostMapping {
        prot: Prot::READ,
        backing: Backing::Anon,
    };
    assert_eq!(
        rig.host.conflicts,
        [Conflict {
            start: page(0),
            end: page(4),
            pieces: vec![
                GuestPiece {
                    start: page(0),
                    end: page(1),
                    want: Some(rw)
                },
                GuestPiece {
                    start: page(1),
                    end: page(2),
                    want: Some(ro)
                },
                GuestPiece {
                    start: page(2),
                    end: page(4),
                    want: Some(rw)
                },
            ],
            chosen: rw,
        }]
    );

    // <-->          all of granule 0 r--: one protect of the whole granule, no conflict
    let (_, ops) = rig.call(nr::MPROTECT, [page(0).0, pages(4), R, 0, 0, 0]);
    assert_eq!(
        ops,
        [HostOp::Protect {
            start: page(0),
            end: page(4),
            prot: Prot::READ
        }]
    );
    assert!(rig.host.conflicts.is_empty());

    //       ^^      munmap pages 5..7: granule 1 stays mapped for pages 4 and 7
    // aaaa|A..A
    let (_, ops) = rig.call(nr::MUNMAP, [page(5).0, pages(2), 0, 0, 0, 0]);
    assert!(ops.is_empty(), "{ops:?}");
    assert_eq!(rig.host.conflicts.len(), 1);
    assert_eq!(
        rig.host.conflicts[0].pieces[1],
        GuestPiece {
            start: page(5),
            end: page(7),
            want: None
        }
    );

    //       ^^      map them again: the granule stays, the new pages read zero
    let (_, ops) = rig.call(nr::MMAP, [page(5).0, pages(2), RW, ANON_FIXED, u64::MAX, 0]);
    assert_eq!(
        ops,
        [HostOp::Zero {
            start: page(5),
            end: page(7)
        }]
    );

    //      ^        DONTNEED one page of granule 1: its bytes are zeroed, not the granule's
    let (_, ops) = rig.call(nr::MADVISE, [page(4).0, pages(1), 4, 0, 0, 0]);
    assert_eq!(
        ops,
        [HostOp::Zero {
            start: page(4),
            end: page(5)
        }]
    );

    //  ^^           an unaligned mremap move: map the destination, copy, then unmap
    let (to, ops) = rig.call(nr::MREMAP, [page(5).0, pages(2), pages(2), 3, page(13).0, 0]);
    assert_eq!(to, page(13).0);
    assert_eq!(
        ops,
        [
            HostOp::Map {
                start: page(12),
                end: page(16),
                prot: Prot::RW,
                backing: Backing::Anon
            },
            HostOp::Copy {
                from: page(5),
                to: page(13),
                len: pages(2)
            },
        ]
    );

    // munmap what is left of granule 1: now it goes.
    let (_, ops) = rig.call(nr::MUNMAP, [page(4).0, pages(4), 0, 0, 0, 0]);
    assert_eq!(
        ops,
        [HostOp::Unmap {
            start: page(4),
            end: page(8)
        }]
    );
}

/// A small xorshift generator: random calls without a dependency, the same on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Random calls over a 32-page window (fixed maps of anonymous memory and, with `files`, of a
/// memfd shared and private; munmap, mprotect, DONTNEED, mremap in place and moving, stores),
/// each checked against the engine and the ordering rule by [`Rig::call`].
fn random_calls(granule: u64, files: bool, seed: u64, steps: usize) {
    let mut rig = Rig::new(granule);
    rig.windows = vec![(BASE, BASE + pages(32))];
    let memfd = rig.mm.shmem().memfd_create("guest", pages(64));
    rig.fds.insert(3, memfd);
    let mut rng = Rng(seed);
    let prots = [0, R, RW];
    for _ in 0..steps {
        let start = rng.below(30);
        let len = 1 + rng.below(32 - start).min(8);
        let (a, l) = (page(start).0, pages(len));
        let prot = prots[rng.below(3) as usize];
        match rng.below(if files { 9 } else { 7 }) {
            0 | 1 => {
                rig.call(nr::MMAP, [a, l, prot, ANON_FIXED, u64::MAX, 0]);
            }
            2 => {
                rig.call(nr::MUNMAP, [a, l, 0, 0, 0, 0]);
            }
            3 => {
                rig.call(nr::MPROTECT, [a, l, prot, 0, 0, 0]);
            }
            4 => {
                rig.call(nr::MADVISE, [a, l, 4, 0, 0, 0]);
            }
            5 => {
                let new_len = pages(1 + rng.below(8));
                let to = page(rng.below(24)).0;
                let flags = [0, 1, 3][rng.below(3) as usize];
                rig.call(nr::MREMAP, [a, l, new_len, flags, to, 0]);
            }
            6 => {
                let p = VirtAddr(a + rng.below(PG));
                let v = [rng.next() as u8; 3];
                // A store that faults midway keeps the bytes before the fault.
                let done = rig.mm.write(p, &v).map_or_else(|f| f.done, |()| v.len());
                rig.host.store(p.0, &v[..done]);
            }
            k => {
                let share = if k == 7 { SHARED_FIXED } else { 0x12 };
                rig.call(nr::MMAP, [a, l, prot, share, 3, pages(rng.below(32))]);
            }
        }
    }
}

/// Random calls on a page-sized host: the host is the model after each, exactly.
#[test]
fn random_calls_on_a_page_sized_host() {
    for seed in 1..=40u64 {
        random_calls(PG, true, seed.wrapping_mul(0x9e37_79b9_7f4a_7c15), 600);
    }
}

/// Random anonymous calls on 16 KiB and 64 KiB granules: every guest page is on the host with
/// at least its protection and the model's bytes, and the ordering rule holds.
#[test]
fn random_anonymous_calls_on_larger_granules() {
    for seed in 1..=30u64 {
        random_calls(4 * PG, false, seed.wrapping_mul(0x2545_f491_4f6c_dd1d), 400);
        random_calls(16 * PG, false, seed.wrapping_mul(0x2545_f491_4f6c_dd1d) + 7, 400);
    }
}

/// madvise(DONTNEED) stops at the first VMA it refuses (mm/madvise.c:madvise_walk_vmas): the
/// pieces before a locked VMA are zapped, those after it are not; a hole only adds ENOMEM.
#[test]
fn dontneed_zaps_up_to_the_refused_vma() {
    let mut rig = Rig::new(PG);
    // 0123456
    // AA L BB      anonymous rw-, page 3 locked (a VMA of its own), holes at 2 and 4
    rig.call(nr::MMAP, [page(0).0, pages(2), RW, ANON_FIXED, u64::MAX, 0]);
    rig.call(nr::MMAP, [page(3).0, pages(1), RW, ANON_FIXED, u64::MAX, 0]);
    rig.call(nr::MMAP, [page(5).0, pages(2), R, ANON_FIXED, u64::MAX, 0]);
    let (r, ops) = rig.call(nr::MLOCK, [page(3).0, pages(1), 0, 0, 0, 0]);
    assert_eq!((r, ops.len()), (0, 0));
    fill(&mut rig, 0, 2, 0x60);
    fill(&mut rig, 3, 4, 0x60);
    let (r, ops) = rig.call(nr::MADVISE, [page(0).0, pages(7), 4, 0, 0, 0]);
    assert_eq!(r as i64, -22);
    assert_eq!(
        ops,
        [HostOp::Zap {
            start: page(0),
            end: page(2)
        }]
    );
    // MADV_DONTNEED_LOCKED passes the locked VMA; the hole makes it ENOMEM.
    let (r, ops) = rig.call(nr::MADVISE, [page(0).0, pages(7), 24, 0, 0, 0]);
    assert_eq!(r as i64, -12);
    assert_eq!(
        ops,
        [
            HostOp::Zap {
                start: page(0),
                end: page(2)
            },
            HostOp::Zap {
                start: page(3),
                end: page(4)
            },
            HostOp::Zap {
                start: page(5),
                end: page(7)
            },
        ]
    );
}

/// A MREMAP_FIXED move of several VMAs and a hole (mm/mremap.c:remap_move, 6.17+) over live
/// memory: one move per VMA; each clears only its own target, so the destination page facing
/// the hole keeps its mapping, as the engine has it.
#[test]
fn multi_vma_fixed_move_over_live_memory() {
    let mut rig = Rig::new(PG);
    // 0123456789abcdef
    // AA B      DDDDD   A rw-, B r--, a hole at 2; D (rw-) the destination
    rig.call(nr::MMAP, [page(0).0, pages(2), RW, ANON_FIXED, u64::MAX, 0]);
    rig.call(nr::MMAP, [page(3).0, pages(1), R, ANON_FIXED, u64::MAX, 0]);
    rig.call(nr::MMAP, [page(10).0, pages(5), RW, ANON_FIXED, u64::MAX, 0]);
    fill(&mut rig, 0, 2, 0x80);
    fill(&mut rig, 10, 15, 0x90);
    // <-->      -> 10   A to 10..12, B to 13; page 12 (facing the hole) stays D
    let (r, ops) = rig.call(nr::MREMAP, [page(0).0, pages(4), pages(4), 3, page(10).0, 0]);
    assert_eq!(r, page(10).0);
    assert_eq!(
        ops,
        [
            HostOp::Move {
                from: page(0),
                to: page(10),
                len: pages(2),
                keep_source: false
            },
            HostOp::Move {
                from: page(3),
                to: page(13),
                len: pages(1),
                keep_source: false
            },
        ]
    );
    assert!(rig.mm.vma_at(page(12)).is_some());
}

/// Different backings inside one 16 KiB granule (anonymous memory, then a shared memfd) are a
/// conflict too: the granule keeps the lowest piece's backing, and the memfd piece says what it
/// wants.
#[test]
fn different_backings_in_one_16k_granule_are_a_conflict() {
    let mut rig = Rig::new(4 * PG);
    let memfd = rig.mm.shmem().memfd_create("guest", pages(4));
    let mf = FileId {
        dev: memfd.inode().dev(),
        ino: memfd.inode().ino(),
    };
    rig.fds.insert(3, memfd);
    // 0123
    // AAmm          anonymous rw-, then the memfd's first two pages shared rw-
    rig.call(nr::MMAP, [page(0).0, pages(4), RW, ANON_FIXED, u64::MAX, 0]);
    let (_, ops) = rig.call(nr::MMAP, [page(2).0, pages(2), RW, SHARED_FIXED, 3, 0]);
    let anon = HostMapping {
        prot: Prot::RW,
        backing: Backing::Anon,
    };
    let shared = HostMapping {
        prot: Prot::RW,
        backing: Backing::File {
            file: mf,
            offset: 0,
            sharing: Sharing::Shared,
        },
    };
    assert!(ops.is_empty(), "the granule stays as it is: {ops:?}");
    assert_eq!(
        rig.host.conflicts,
        [Conflict {
            start: page(0),
            end: page(4),
            pieces: vec![
                GuestPiece {
                    start: page(0),
                    end: page(2),
                    want: Some(anon)
                },
                GuestPiece {
                    start: page(2),
                    end: page(4),
                    want: Some(shared)
                },
            ],
            chosen: anon,
        }]
    );
}
