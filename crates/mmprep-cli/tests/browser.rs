//! `mmprep render` in a real browser: the HTML page of an example is opened in headless
//! chromium (Debian's package, installed by `.ci/run`), a screenshot is taken, and the PNG is
//! decoded and checked for the VMA colours of the frame shown, not just for existing; and every
//! example, rendered in one `mmprep render examples/*.scn` call, shows VMAs.
//!
//! Without `/usr/bin/chromium` (or `$CHROMIUM`) the test prints why and passes, unless `CI` is
//! set: in CI it must run.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use mmprep_scenario::render::{Kind, colour};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The chromium binary, or `None` (after saying why) when this machine has none and is not CI.
fn chromium() -> Option<PathBuf> {
    let path = std::env::var_os("CHROMIUM").map_or_else(|| PathBuf::from("/usr/bin/chromium"), PathBuf::from);
    if path.exists() {
        return Some(path);
    }
    if std::env::var_os("CI").is_some() {
        panic!(
            "{} is missing in CI: .ci/run installs Debian's chromium for this test",
            path.display()
        );
    }
    println!(
        "skipped: no {} (apt-get install chromium, or set CHROMIUM); CI runs this test",
        path.display()
    );
    None
}

/// A fresh directory for one test's files.
fn temp_dir(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("browser-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// `mmprep render EXAMPLE -o DIR/NAME.html`.
fn render_html(example: &str, dir: &Path) -> PathBuf {
    let html = dir.join("page.html");
    let out = Command::new(env!("CARGO_BIN_EXE_mmprep"))
        .current_dir(root())
        .args(["render", example, "-o"])
        .arg(&html)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "render {example}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    html
}

/// Headless chromium's screenshot of `page#step`, 1200x800.
fn screenshot(chromium: &Path, page: &Path, step: usize, png: &Path) {
    let profile = png.with_extension("profile");
    std::fs::create_dir_all(&profile).unwrap();
    let url = format!("file://{}#{step}", page.canonicalize().unwrap().display());
    let mut child = Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
            "--window-size=1200,800",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(format!("--screenshot={}", png.display()))
        .arg(&url)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("cannot start chromium");
    let deadline = Instant::now() + Duration::from_secs(120);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            // Only the child this test started.
            let _ = child.kill();
            let _ = child.wait();
            panic!("chromium took more than 120 s for {url}");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(status.success(), "chromium failed on {url}: {status}");
    let _ = std::fs::remove_dir_all(&profile);
}

/// The decoded screenshot: width, height and RGB pixels.
fn decode(png_path: &Path) -> (u32, u32, Vec<[u8; 3]>) {
    let file = std::io::BufReader::new(std::fs::File::open(png_path).expect("the screenshot exists"));
    let mut decoder = png::Decoder::new(file);
    decoder.set_transformations(png::Transformations::EXPAND | png::Transformations::STRIP_16);
    let mut reader = decoder.read_info().expect("a PNG");
    let mut buf = vec![0; reader.output_buffer_size().expect("a sane size")];
    let info = reader.next_frame(&mut buf).expect("a PNG frame");
    let step = match info.color_type {
        png::ColorType::Rgb => 3,
        png::ColorType::Rgba => 4,
        other => panic!("unexpected colour type {other:?}"),
    };
    let pixels = buf[..info.buffer_size()]
        .chunks_exact(step)
        .map(|p| [p[0], p[1], p[2]])
        .collect();
    (info.width, info.height, pixels)
}

/// How many pixels are within 2 of `rgb` in each channel.
fn count(pixels: &[[u8; 3]], (r, g, b): (u8, u8, u8)) -> usize {
    pixels
        .iter()
        .filter(|p| p[0].abs_diff(r) <= 2 && p[1].abs_diff(g) <= 2 && p[2].abs_diff(b) <= 2)
        .count()
}

/// A legend swatch is about 60 screen pixels; a VMA box is thousands.
const VMA_PIXELS: usize = 400;

#[test]
fn the_render_example_shows_its_vma_colours_in_chromium() {
    let Some(chromium) = chromium() else { return };
    let dir = temp_dir("render");
    let page = render_html("examples/render.scn", &dir);
    // Step 15 is `munmap 1M 8K`: five VMAs of five colours, the file mapping split, half of it
    // unmapped, resident pages in the anonymous and shared mappings.
    let png = dir.join("render.png");
    screenshot(&chromium, &page, 15, &png);
    let (w, h, pixels) = decode(&png);
    assert_eq!((w, h), (1200, 800));
    let expected = [
        ("anonymous rw-", colour(Kind::Anon, 2)),
        ("anonymous r-x", colour(Kind::Anon, 3)),
        ("file r--", colour(Kind::File, 1)),
        ("shared rw-", colour(Kind::Shared, 2)),
        ("driver rw-", colour(Kind::Driver, 2)),
    ];
    let counts: Vec<(&str, usize)> = expected.iter().map(|(name, c)| (*name, count(&pixels, *c))).collect();
    let shown = counts.iter().filter(|(_, n)| *n >= VMA_PIXELS).count();
    assert_eq!(
        shown,
        expected.len(),
        "pixels per VMA colour: {counts:?} ({})",
        png.display()
    );
    // The split outline, the resident-page cells and the unmapped outline are drawn too.
    for (what, c) in [
        ("split outline", (0xd0, 0x18, 0x7a)),
        ("resident pages", (0x20, 0x20, 0x20)),
        ("unmapped outline", (0xcc, 0x00, 0x00)),
    ] {
        assert!(count(&pixels, c) >= 50, "{what}: {} pixels", count(&pixels, c));
    }
    // A copy where a person can look at it.
    let _ = std::fs::copy(
        &png,
        Path::new(env!("CARGO_TARGET_TMPDIR")).join("render-screenshot.png"),
    );
}

#[test]
fn the_slots_example_steps_to_a_split_in_chromium() {
    let Some(chromium) = chromium() else { return };
    let dir = temp_dir("slots");
    let page = render_html("examples/slots.scn", &dir);
    // Step 6 is `munmap 4K 4K`: the driver's first VMA split, a page unmapped.
    let png = dir.join("slots.png");
    screenshot(&chromium, &page, 6, &png);
    let (_, _, pixels) = decode(&png);
    let driver = count(&pixels, colour(Kind::Driver, 2));
    assert!(driver >= 2 * VMA_PIXELS, "driver rw- pixels: {driver}");
    assert!(count(&pixels, (0xd0, 0x18, 0x7a)) >= 50, "the split outline is drawn");
    // Nothing of another kind is mapped at this step: only legend swatches.
    assert!(count(&pixels, colour(Kind::Anon, 2)) < VMA_PIXELS);
    // The page is mostly white and purple, not blank: many distinct colours were painted.
    let mut distinct: Vec<[u8; 3]> = pixels.clone();
    distinct.sort_unstable();
    distinct.dedup();
    assert!(distinct.len() > 20, "{} distinct colours", distinct.len());
}

/// Issue 10's check as written: `mmprep render examples/*.scn` in one call makes one page per
/// example, and chromium shows VMAs on every page (at its last step, or one of the two before
/// it when the scenario ends by unmapping everything).
#[test]
fn every_example_renders_in_one_call_and_chromium_shows_it() {
    let Some(chromium) = chromium() else { return };
    let dir = temp_dir("examples");
    let mut examples: Vec<PathBuf> = std::fs::read_dir(root().join("examples"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "scn"))
        .collect();
    examples.sort();
    assert!(examples.len() >= 10, "{examples:?}");
    let out = Command::new(env!("CARGO_BIN_EXE_mmprep"))
        .current_dir(root())
        .arg("render")
        .args(&examples)
        .arg("-o")
        .arg(&dir)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "render: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert_eq!(stdout.lines().count(), examples.len(), "{stdout}");
    let kinds = [Kind::Anon, Kind::File, Kind::Shared, Kind::Driver];
    let mut blank = Vec::new();
    for example in &examples {
        let stem = example.file_stem().unwrap().to_string_lossy().into_owned();
        let page = dir.join(format!("{stem}.html"));
        assert!(stdout.contains(&format!("{} (", page.display())), "{stem}: {stdout}");
        let png = dir.join(format!("{stem}.png"));
        let steps = stdout
            .lines()
            .find(|l| l.contains(&format!("{stem}.html")))
            .and_then(|l| l.rsplit_once('(')?.1.split_once(' ')?.0.parse::<usize>().ok())
            .expect("a step count");
        // Several examples end by unmapping everything: then the step before shows the VMAs.
        let mut vma_pixels = 0;
        for step in (1..=steps).rev().take(3) {
            screenshot(&chromium, &page, step, &png);
            let (_, _, pixels) = decode(&png);
            // The most of any one VMA colour: the legend has a small swatch of each, so a sum
            // over colours would pass a page with nothing mapped; one VMA box is above the bar.
            vma_pixels = kinds
                .iter()
                .flat_map(|k| (0..4).map(move |class| colour(*k, class)))
                .map(|c| count(&pixels, c))
                .max()
                .unwrap_or(0);
            if vma_pixels >= VMA_PIXELS {
                break;
            }
        }
        if vma_pixels < VMA_PIXELS {
            blank.push(format!("{stem}: {vma_pixels} VMA pixels ({})", png.display()));
        }
    }
    assert!(blank.is_empty(), "pages without a VMA on screen:\n{}", blank.join("\n"));
}
