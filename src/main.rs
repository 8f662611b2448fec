//! The `pipe` executable: parse the command line, run, map the outcome to an exit code.

fn main() {
    std::process::exit(pipe::cli::main());
}
