//! The `pipe` executable: run as a stage's supervisor when started as one (where the small
//! `pipe-supervise` is not installed beside it), else set the process-wide policy, parse the
//! command line, run, map the outcome to an exit code.

fn main() {
    if let Some(code) = pipe::interrupt::supervisor::main_if_asked() {
        std::process::exit(code);
    }
    pipe::alloc::keep_freed_memory();
    std::process::exit(pipe::cli::main());
}
