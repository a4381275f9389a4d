//! The `inflight` command line: `demo`, `replay` and `load`. See `inflight --help`.

mod cli;

fn main() {
    std::process::exit(cli::main());
}
