//! The `pipe` executable: set the process-wide policy, parse the command line, run, map the
//! outcome to an exit code.

fn main() {
    pipe::alloc::keep_freed_memory();
    std::process::exit(pipe::cli::main());
}
