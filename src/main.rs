//! The `pipe` executable: run as a stage's supervisor when started as one, else set the
//! process-wide policy, parse the command line, run, map the outcome to an exit code.

fn main() {
    // A stage's supervisor (`pipe __supervise`) is this executable in a small mode of its own.
    if let Some(code) = pipe::interrupt::supervisor::main_if_asked() {
        std::process::exit(code);
    }
    pipe::interrupt::supervisor::set_program("/proc/self/exe".into());
    pipe::alloc::keep_freed_memory();
    std::process::exit(pipe::cli::main());
}
