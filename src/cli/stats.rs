//! `playbook stats`: one playbook's flow analytics from a data folder (read-only, beside a
//! running server) or a PostgreSQL database, as a table, JSON or CSV. The playbook's cards
//! come from the version the database stored, so no playbook folder is needed.

use std::path::PathBuf;

use super::{EXIT_ERRORS, EXIT_OK, EXIT_USAGE, print_err, print_out};
use crate::persist::{Storage, VersionRow};
use crate::stats;

/// How `stats` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum StatsFormat {
    /// Aligned tables.
    Table,
    /// The report as JSON (as `GET /api/admin/stats`).
    Json,
    /// Cards, links and outcomes as CSV rows.
    Csv,
}

/// The options of `playbook stats`.
#[derive(Debug, clap::Args)]
pub struct StatsArgs {
    /// The playbook's name (its file stem, as the server serves it).
    pub playbook: String,
    /// One version (default: all, shown on the newest version's cards).
    #[arg(long)]
    pub version: Option<i64>,
    /// First day, YYYY-MM-DD (UTC); default 29 days before --to.
    #[arg(long)]
    pub from: Option<String>,
    /// Last day, YYYY-MM-DD (UTC); default today.
    #[arg(long)]
    pub to: Option<String>,
    /// The data folder of `serve` (read-only; the server may be running).
    #[arg(long, default_value = "data", conflicts_with = "database")]
    pub data: PathBuf,
    /// Read PostgreSQL instead: postgres://USER@HOST[:PORT]/DB.
    #[arg(long, env = "PLAYBOOK_DATABASE_URL", hide_env_values = true)]
    pub database: Option<String>,
    /// PostgreSQL: the schema the tables are in.
    #[arg(long)]
    pub db_schema: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = StatsFormat::Table)]
    pub format: StatsFormat,
}

type Rows = Vec<(i64, String, i64)>;

/// Prints the report; exit 0, 1 when the playbook or data is not there, 2 for bad options.
pub fn run(args: &StatsArgs) -> u8 {
    let today = stats::day(crate::engine::Instant(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64),
    ));
    let (from, to) = match stats::range(args.from.as_deref(), args.to.as_deref(), today) {
        Ok(r) => r,
        Err(e) => {
            print_err(&format!("error: {e}\n"));
            return EXIT_USAGE;
        }
    };
    let read = |versions: Vec<VersionRow>,
                rows: &dyn Fn() -> Result<Rows, crate::persist::StoreError>|
     -> Result<(VersionRow, Rows), String> {
        let found = versions
            .into_iter()
            .filter(|v| v.name == args.playbook && args.version.is_none_or(|n| v.version == n))
            .max_by_key(|v| v.version)
            .ok_or_else(|| match args.version {
                Some(n) => format!(
                    "no version {n} of a playbook named `{}` is stored",
                    args.playbook
                ),
                None => format!("no playbook named `{}` is stored", args.playbook),
            })?;
        Ok((found, rows().map_err(|e| e.to_string())?))
    };
    let got = match &args.database {
        Some(url) => crate::persist::PgStore::open(&crate::persist::PgOptions {
            schema: args.db_schema.clone(),
            pool_size: 2,
            ..crate::persist::PgOptions::new(url.clone())
        })
        .map_err(|e| e.to_string())
        .and_then(|s| {
            let versions = s.versions().map_err(|e| e.to_string())?;
            read(versions, &|| {
                s.stats(&args.playbook, args.version, from, to)
            })
        }),
        None => crate::persist::sqlite::SqliteReader::open(&args.data.join("playbook.sqlite"))
            .map_err(|e| e.to_string())
            .and_then(|s| {
                let versions = s.versions().map_err(|e| e.to_string())?;
                read(versions, &|| {
                    s.stats(&args.playbook, args.version, from, to)
                })
            }),
    };
    let (version, rows) = match got {
        Ok(x) => x,
        Err(e) => {
            print_err(&format!("error: {e}\n"));
            return EXIT_ERRORS;
        }
    };
    let playbook = match crate::load::parse_text(version.file.clone(), version.source) {
        Ok(p) => p.playbook,
        Err(_) => {
            print_err(&format!(
                "error: the stored version {} of `{}` no longer parses\n",
                version.version, args.playbook
            ));
            return EXIT_ERRORS;
        }
    };
    let report = stats::report(&playbook, &args.playbook, args.version, (from, to), &rows);
    let out = match args.format {
        StatsFormat::Table => stats::table(&report),
        StatsFormat::Json => {
            serde_json::to_string_pretty(&report).expect("a report serializes") + "\n"
        }
        StatsFormat::Csv => stats::csv(&report),
    };
    print_out(&out);
    EXIT_OK
}
