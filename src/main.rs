use clap::Parser;

fn main() {
    let cli = sitepack::cli::Cli::parse();
    if !matches!(cli.command, sitepack::cli::Command::Serve(_)) {
        // A one-shot command piped into `head` should end quietly when the
        // reader goes away, as Unix tools do, not panic in `println!`. The
        // server keeps Rust's default (SIGPIPE ignored): a client closing
        // its socket must never kill it.
        // SAFETY: called before any other thread exists; SIG_DFL is a valid
        // disposition for SIGPIPE.
        unsafe {
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        }
    }
    let code = match sitepack::cli::run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            2
        }
    };
    std::process::exit(code);
}
