//! A device region's size costs nothing until written (found by the `api` fuzz target).
//!
//! `mem` and `fb` used to allocate their whole `size` parameter when opened
//! (`vec![fill; size]`): `file d driver mem size=1T` in a scenario, or the same `open` from an
//! embedder, aborted the process with an allocation failure instead of opening a file.

use mmprep::{MapFlags, Mm, Profile, Prot, VirtAddr};
use mmprep_drivers::registry::{self, DriverEnv, Params};

const BASE: u64 = 0x2000_0000_0000;

fn open(mm: &Mm, driver: &str, params: &[(&str, &str)]) -> std::sync::Arc<mmprep::file::File> {
    let env = DriverEnv {
        machine: mm.machine(),
        shmem: mm.shmem(),
        events: mm.event_sink(),
    };
    let params = Params(params.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect());
    (registry::find(driver).unwrap().open)(&params, &env).unwrap()
}

/// Driver, parameters, mmap offset (past 512 GiB), the byte unwritten memory reads as.
type Case = (&'static str, &'static [(&'static str, &'static str)], u64, u8);

#[test]
fn a_terabyte_of_device_memory_opens_and_maps() {
    let cases: [Case; 2] = [
        (
            "mem",
            &[("base", "0x100000"), ("size", "1099511627776")],
            0x100000 + (1u64 << 39),
            0x4d,
        ),
        ("fb", &[("size", "1099511627776")], 1u64 << 39, 0),
    ];
    for (driver, params, off, fill) in cases {
        let mut mm = Mm::new(Profile::reference_host());
        let file = open(&mm, driver, params);
        let at = VirtAddr(BASE);
        let flags = MapFlags(MapFlags::SHARED.0 | MapFlags::FIXED.0);
        mm.mmap(at, 2 * 4096, Prot::RW, flags, Some(&file), off).unwrap();
        mm.check_invariants();
        // Unwritten bytes read as the fill; written ones read back; the next page is untouched.
        let mut buf = [0u8; 4];
        mm.read(VirtAddr(BASE + 8), &mut buf).unwrap();
        assert_eq!(buf, [fill; 4], "{driver}");
        mm.write(VirtAddr(BASE + 8), b"abcd").unwrap();
        mm.read(VirtAddr(BASE + 8), &mut buf).unwrap();
        assert_eq!(&buf, b"abcd", "{driver}");
        mm.read(VirtAddr(BASE + 4096 + 8), &mut buf).unwrap();
        assert_eq!(buf, [fill; 4], "{driver}");
    }
}

/// Reads and writes across page boundaries and past the end of a region: written bytes read
/// back, unwritten ones read as the fill, bytes past the end read as `0xff` and are not kept.
#[test]
fn device_memory_across_pages_and_past_the_end() {
    use mmprep::phys::DeviceMemory;
    use mmprep_drivers::memory::MemoryRegion;
    let r = MemoryRegion::new(3 * 4096 + 100, 7);
    // 4000..12000: the end of the first page, the second whole, most of the third.
    let data: Vec<u8> = (0..8000u32).map(|i| (i % 251) as u8).collect();
    r.write(4000, &data);
    let mut back = vec![0u8; 8000];
    r.read(4000, &mut back);
    assert!(back == data, "bytes written across pages read back different");
    let mut head = [0u8; 8];
    r.read(3992, &mut head);
    assert_eq!(head, [7, 7, 7, 7, 7, 7, 7, 7]);
    // The region ends 100 bytes into its fourth page.
    r.write(3 * 4096 + 90, &[1; 30]);
    let mut tail = [0u8; 30];
    r.read(3 * 4096 + 90, &mut tail);
    assert_eq!(&tail[..10], &[1; 10]);
    assert_eq!(&tail[10..], &[0xff; 20]);
    let mut far = [0u8; 4];
    r.read(u64::MAX - 1, &mut far);
    assert_eq!(far, [0xff; 4]);
}
