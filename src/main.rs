use clap::Parser;

fn main() {
    let code = match arpanet::cli::Cli::try_parse() {
        Ok(cli) => arpanet::run(cli),
        Err(err) => arpanet::parse_failed(err),
    };
    std::process::exit(code);
}
