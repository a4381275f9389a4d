//! The `inflight` command line: the demo, replay and time travel, the offline tools (`dump`,
//! `verify`, `stats`), `compact`, `load`, `bench` and `import-json`. See `inflight --help` and
//! docs/CLI.md.

mod cli;

fn main() {
    std::process::exit(cli::main());
}
