//! The `playbook` command line: argument types (clap) and one function per subcommand.
//!
//! `main.rs` only parses [`Cli`] and calls [`Cli::run`]. Each subcommand reads files, calls the
//! library, and renders results; none of them holds product logic.

mod bench;
mod check;
mod files;
mod fmt;
mod loadgen;
mod run;
mod serve;
mod stats;
mod test;

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

pub use crate::load::MAX_FILE_BYTES;
pub use bench::BenchArgs;
pub use files::expand;

/// Exit code: everything fine (warnings allowed).
pub const EXIT_OK: u8 = 0;
/// Exit code: a playbook has errors (or `fmt --check` found unformatted files).
pub const EXIT_ERRORS: u8 = 1;
/// Exit code: bad usage or an I/O problem (a file that cannot be read or written).
pub const EXIT_USAGE: u8 = 2;

/// Author, check, convert and run chatbot playbooks.
#[derive(Debug, Parser)]
#[command(name = "playbook", version, about, long_about = None)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check playbooks and print their diagnostics.
    ///
    /// Exits 0 when no file has errors (warnings are printed), 1 when any file has errors,
    /// 2 for usage or I/O problems.
    Check {
        /// Playbook files (`.playbook` for the DSL, `.json` for JSON), or folders to search
        /// for them.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Output format: rustc-like text on stderr, or JSON on stdout for editors.
        #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
        format: OutputFormat,
        /// Treat warnings as errors.
        #[arg(long)]
        deny_warnings: bool,
        /// Also check that the teams, agents and pools the playbooks name exist in this
        /// server config (W004).
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Format playbooks in place, or convert them between the DSL and JSON.
    Fmt {
        /// Playbook files, or folders to search for them.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Write nothing; exit 1 if a file is not formatted (or its conversion is stale).
        #[arg(long)]
        check: bool,
        /// Convert to this format, writing beside the input with the new extension
        /// (`demo.playbook` → `demo.json`).
        #[arg(long, value_enum)]
        to: Option<FileFormat>,
        /// Print the result to stdout instead of writing files.
        #[arg(long, conflicts_with = "check")]
        stdout: bool,
        /// With `--to`: replace the destination even when it exists and holds something
        /// other than the input's playbook (by default that is refused, exit 1).
        #[arg(long)]
        force: bool,
    },
    /// Print a playbook's graph of cards.
    Graph {
        /// The playbook file.
        file: PathBuf,
        /// Mermaid (paste into Markdown, GitHub renders it) or Graphviz DOT.
        #[arg(long, value_enum, default_value_t = GraphFormat::Mermaid)]
        format: GraphFormat,
    },
    /// Print the JSON Schema of the JSON playbook format.
    Schema,
    /// Serve the playbooks of a folder over HTTP and WebSocket (see docs/api.md).
    Serve {
        /// The playbook folder.
        #[arg(long, default_value = "playbooks")]
        playbooks: PathBuf,
        /// The data folder (created; holds the SQLite database).
        #[arg(long, default_value = "data")]
        data: PathBuf,
        /// Where to listen.
        #[arg(long, default_value = "127.0.0.1:8080")]
        addr: String,
        /// The config file: agents, pools, webhook, limits (see playbook.toml.example).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Store in PostgreSQL instead of SQLite in --data: postgres://USER@HOST[:PORT]/DB.
        /// Any number of replicas may share one database (see "Several replicas" in the
        /// README).
        #[arg(long, env = "PLAYBOOK_DATABASE_URL", hide_env_values = true)]
        database: Option<String>,
        /// PostgreSQL: keep the tables in this schema (created if missing) instead of the
        /// user's default one.
        #[arg(long)]
        db_schema: Option<String>,
        /// PostgreSQL: connections in this replica's pool.
        #[arg(long, default_value_t = 16)]
        db_pool: usize,
        /// PostgreSQL: milliseconds one statement may run before it is cancelled.
        #[arg(long, default_value_t = 5000)]
        db_statement_timeout_ms: u64,
    },
    /// Drive a running server with many conversations and print throughput.
    Load {
        /// The server; several (`HOST:PORT,HOST:PORT`) are sent requests in turn.
        #[arg(long, default_value = "127.0.0.1:8080")]
        addr: String,
        /// How many conversations to start.
        #[arg(long, default_value_t = 1000)]
        conversations: usize,
        /// Visitor turns per conversation after the start.
        #[arg(long, default_value_t = 2)]
        turns: usize,
        /// Concurrent clients.
        #[arg(long, default_value_t = 64)]
        concurrency: usize,
        /// The playbook to start.
        #[arg(long, default_value = "demo")]
        playbook: String,
    },
    /// Talk to a playbook in the terminal, as the visitor and (with `/` commands) the agents.
    ///
    /// Time is virtual: it starts at the wall clock and moves only with `/wait`.
    Run {
        /// The playbook file.
        file: PathBuf,
        /// Simulated agents, online, in every team and pool the playbook names
        /// (default: none, so the offline path shows).
        #[arg(long, value_delimiter = ',')]
        agents: Vec<String>,
        /// Read one JSON event per line on stdin, write one JSON line per effect on stdout.
        #[arg(long)]
        json: bool,
        /// Start the virtual clock here (ms since the Unix epoch) for reproducible output.
        #[arg(long, value_name = "MS")]
        start_ms: Option<u64>,
    },
    /// Run scenario files, compare their transcripts with snapshots, report coverage.
    ///
    /// Exits 0 when every scenario passes, 1 on a failed expectation, a changed transcript,
    /// a scenario error or coverage below `--min-coverage`, 2 for usage or I/O problems
    /// (including two scenarios with the same file name, which would share a snapshot).
    Test {
        /// Scenario files or folders to search for `*.scenario` (default: `playbooks`).
        paths: Vec<PathBuf>,
        /// Write new and changed snapshots instead of failing on them.
        #[arg(long)]
        accept: bool,
        /// Fail when branch coverage over all playbooks is below this percentage.
        #[arg(long, value_name = "N")]
        min_coverage: Option<f64>,
        /// The folder of snapshot files.
        #[arg(long, default_value = "snapshots")]
        snapshots: PathBuf,
    },
    /// Run the canonical benchmark (docs/bench/FLOW.md) and print its JSON line.
    ///
    /// Exits 0 when every reply and lead matched, 1 on any mismatch (`"ok": false`).
    Bench(bench::BenchArgs),
    /// Print a playbook's flow analytics: traffic per card and answer, drop-off, outcomes,
    /// records and live-chat numbers, from a data folder or a PostgreSQL database.
    Stats(stats::StatsArgs),
}

/// How `check` reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// Human-readable, like rustc.
    Text,
    /// One JSON document on stdout.
    Json,
}

/// How `graph` draws.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum GraphFormat {
    /// A Mermaid flowchart.
    Mermaid,
    /// Graphviz DOT.
    Dot,
}

/// The two file formats of a playbook.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FileFormat {
    /// The DSL (`.playbook`).
    Dsl,
    /// JSON (`.json`).
    Json,
}

impl FileFormat {
    /// The format a path's extension names (`.json` is JSON, anything else the DSL).
    pub fn of(path: &std::path::Path) -> Self {
        match path.extension().and_then(|e| e.to_str()) {
            Some(e) if e.eq_ignore_ascii_case("json") => FileFormat::Json,
            _ => FileFormat::Dsl,
        }
    }

    /// The file extension, without the dot.
    pub fn extension(self) -> &'static str {
        match self {
            FileFormat::Dsl => "playbook",
            FileFormat::Json => "json",
        }
    }
}

impl Cli {
    /// Runs the chosen subcommand and returns the process exit code.
    pub fn run(self) -> ExitCode {
        let code = match self.command {
            Command::Check {
                files,
                format,
                deny_warnings,
                config,
            } => check::run(&files, format, deny_warnings, config.as_deref()),
            Command::Fmt {
                files,
                check,
                to,
                stdout,
                force,
            } => fmt::run(
                &files,
                &fmt::Options {
                    check,
                    to,
                    stdout,
                    force,
                },
            ),
            Command::Graph { file, format } => graph(&file, format),
            Command::Serve {
                playbooks,
                data,
                addr,
                config,
                database,
                db_schema,
                db_pool,
                db_statement_timeout_ms,
            } => {
                let database = database.map(|url| crate::persist::PgOptions {
                    schema: db_schema,
                    pool_size: db_pool,
                    statement_timeout: std::time::Duration::from_millis(db_statement_timeout_ms),
                    ..crate::persist::PgOptions::new(url)
                });
                serve::run(crate::server::ServeOptions {
                    playbooks,
                    data,
                    addr,
                    config,
                    database,
                })
            }
            Command::Load {
                addr,
                conversations,
                turns,
                concurrency,
                playbook,
            } => loadgen::run(&addr, conversations, turns, concurrency, &playbook),
            Command::Run {
                file,
                agents,
                json,
                start_ms,
            } => run::run(&file, &agents, json, start_ms),
            Command::Test {
                paths,
                accept,
                min_coverage,
                snapshots,
            } => test::run(&test::Options {
                paths,
                accept,
                min_coverage,
                snapshots,
            }),
            Command::Bench(args) => bench::run(&args),
            Command::Stats(args) => stats::run(&args),
            Command::Schema => {
                let schema = crate::model::schema();
                let text = serde_json::to_string_pretty(&schema).expect("a schema serializes");
                print_out(&format!("{text}\n"));
                EXIT_OK
            }
        };
        ExitCode::from(code)
    }
}

fn graph(path: &std::path::Path, format: GraphFormat) -> u8 {
    // Drawn even when `check` would complain: a picture helps find the problem.
    match crate::load::parse_file(path) {
        Ok(parsed) => {
            let playbook = parsed.playbook;
            let graph = crate::graph::FlowGraph::new(&playbook);
            print_out(&match format {
                GraphFormat::Mermaid => graph.to_mermaid(&playbook),
                GraphFormat::Dot => graph.to_dot(&playbook),
            });
            EXIT_OK
        }
        Err(e @ crate::load::LoadError::Io { .. }) => {
            print_err(&format!("error: {e}\n"));
            EXIT_USAGE
        }
        Err(crate::load::LoadError::Invalid(invalid)) => {
            print_err(&invalid.render(&theme()));
            EXIT_ERRORS
        }
    }
}

/// Writes to stdout, treating a closed pipe (`playbook schema | head`) as done rather than
/// as a reason to panic.
pub(crate) fn print_out(text: &str) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes()).and_then(|()| out.flush());
}

/// Writes to stderr, ignoring a closed pipe.
pub(crate) fn print_err(text: &str) {
    let mut err = std::io::stderr().lock();
    let _ = err.write_all(text.as_bytes()).and_then(|()| err.flush());
}

/// The miette theme for stderr: colour on a terminal, plain otherwise.
pub(crate) fn theme() -> miette::GraphicalTheme {
    use std::io::IsTerminal;
    if std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none() {
        miette::GraphicalTheme::unicode()
    } else {
        miette::GraphicalTheme::unicode_nocolor()
    }
}
