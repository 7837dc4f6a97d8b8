use clap::Parser;

fn main() {
    let cli = sitepack::cli::Cli::parse();
    let code = match sitepack::cli::run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            2
        }
    };
    std::process::exit(code);
}
