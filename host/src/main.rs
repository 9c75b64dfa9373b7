/// mimalloc: glibc's malloc was a fifth of the API's CPU per request
/// (many small short-lived allocations across threads). Built without
/// transparent huge pages (`no_thp`): with them a worker's peak RSS was
/// 2.5x larger (133 MB against 50 MB in `stratbox bench optimize`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    stratbox::cli::main()
}
