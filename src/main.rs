use clap::Parser;

fn main() {
    let cli = arpanet::cli::Cli::parse();
    std::process::exit(arpanet::run(cli));
}
