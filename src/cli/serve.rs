//! `playbook serve`: parse options, set up logging, run [`crate::server::serve`].

use super::{EXIT_OK, EXIT_USAGE, print_err};

/// Runs the server until it is stopped; returns an exit code when it cannot start.
pub fn run(opts: crate::server::ServeOptions) -> u8 {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .try_init();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            print_err(&format!("error: cannot start the runtime: {e}\n"));
            return EXIT_USAGE;
        }
    };
    match rt.block_on(crate::server::serve(opts)) {
        Ok(()) => EXIT_OK,
        Err(e) => {
            print_err(&format!("error: {e}\n"));
            EXIT_USAGE
        }
    }
}
