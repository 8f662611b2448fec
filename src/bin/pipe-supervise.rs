//! `pipe-supervise [--cleanup DIR] -- PROGRAM ARGS…`: the supervisor of one `command` stage,
//! installed beside `pipe`, which starts it (see `pipe::interrupt::supervisor` for what it
//! does). A separate executable because it is small: starting it costs a fraction of loading
//! the whole `pipe` binary, once per command stage.

fn main() {
    let args: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
    std::process::exit(pipe::interrupt::supervisor::main(&args));
}
