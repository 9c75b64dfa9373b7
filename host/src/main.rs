/// mimalloc: glibc's malloc was a fifth of the API's CPU per request
/// (many small short-lived allocations across threads).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    stratbox::cli::main()
}
