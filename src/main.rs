use clap::Parser;

fn main() {
    let cli = match arpanet::cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => {
            let _ = err.print();
            // Help and version are not errors; bad options are bad input.
            let code = if err.use_stderr() {
                arpanet::error::exit::BAD_INPUT
            } else {
                0
            };
            std::process::exit(code);
        }
    };
    std::process::exit(arpanet::run(cli));
}
