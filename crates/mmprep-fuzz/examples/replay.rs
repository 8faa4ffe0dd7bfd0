//! Runs one input file through a target, as `cargo fuzz run TARGET FILE` would, on stable:
//! `cargo run -p mmprep-fuzz --example replay -- api FILE` (`MMPREP_FUZZ_TRACE=1` prints each
//! call of the `api` target as it is made).

fn main() {
    let mut args = std::env::args().skip(1);
    let (Some(target), Some(path)) = (args.next(), args.next()) else {
        eprintln!("usage: replay api|scenario FILE");
        std::process::exit(2);
    };
    let data = std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    match target.as_str() {
        "api" => mmprep_fuzz::api(&data),
        "scenario" => mmprep_fuzz::scenario(&data),
        other => panic!("no target `{other}` (api, scenario)"),
    }
    eprintln!("{path}: no finding");
}
