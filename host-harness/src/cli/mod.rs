//! The `rusvel-host` command line: lists plugins and drives one department's status,
//! objects, events and tools.
//!
//! Department commands are dynamic: the first positional argument is the id of any loaded
//! plugin (`rusvel-host infra status`), so a new department works as soon as its `.wasm`
//! file is dropped into the plugin directory, with the commands its manifest contributes
//! (`rusvel-host infra deploy --service api ...`, see [`commands`]).
//!
//! `rusvel-host worker` runs queued jobs on their plugins; `rusvel-host jobs` lists them.

/// `println!` that reports a closed stdout as an error instead of panicking.
macro_rules! outln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        writeln!(std::io::stdout().lock(), $($arg)*)?;
    }};
}

/// `eprintln!` that drops the message when stderr is closed instead of panicking: the exit
/// code still says the command failed.
macro_rules! errln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr().lock(), $($arg)*);
    }};
}

mod commands;
mod department;
mod jobs;
mod output;
mod session;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use rusvel_host::{HostConfig, PluginHost};

/// Runs RUSVEL department plugins (WebAssembly components) from a directory.
#[derive(Debug, Parser)]
#[command(
    name = "rusvel-host",
    version,
    about,
    after_help = "Department commands (any loaded department id, for example `infra`):\n  \
        rusvel-host <department> status\n  \
        rusvel-host <department> list [--kind KIND] [--limit N]\n  \
        rusvel-host <department> events [--limit N]\n  \
        rusvel-host <department> tool NAME '{\"json\": \"arguments\"}'\n  \
        rusvel-host <department> <command> --ARG VALUE ...   (commands of its manifest)\n  \
        rusvel-host <department> help                        (lists them all)\n\n\
        Put --plugins, --data-dir, --cache-dir, --agent-script and --json\n\
        before the department id.\n\
        Logs go to stderr; set RUST_LOG (default `warn`)."
)]
struct Cli {
    /// Directory holding the plugins (`*.wasm`, with optional `<name>.json` sidecars).
    #[arg(
        long = "plugins",
        global = true,
        default_value = "./plugins",
        env = "RUSVEL_PLUGINS"
    )]
    plugins: PathBuf,

    /// Directory holding the database (`rusvel.db`), the compile cache and the session id.
    #[arg(
        long = "data-dir",
        global = true,
        default_value = "./.rusvel",
        env = "RUSVEL_DATA_DIR"
    )]
    data_dir: PathBuf,

    /// Print JSON instead of tables.
    #[arg(long, global = true)]
    json: bool,

    /// Replay agent answers from this file (JSON array or JSON lines).
    #[arg(long = "agent-script", global = true, env = "RUSVEL_AGENT_SCRIPT")]
    agent_script: Option<PathBuf>,

    /// Where compiled components are cached (default `<data-dir>/cache`); several data
    /// directories may share one cache.
    #[arg(long = "cache-dir", global = true, env = "RUSVEL_CACHE_DIR")]
    cache_dir: Option<PathBuf>,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// List the loaded plugins and the files that failed to load.
    Plugins,
    /// Run queued jobs on the plugins that handle their kinds (until Ctrl-C, or see --once).
    Worker(jobs::WorkerArgs),
    /// List jobs (newest first), or cancel / approve one.
    Jobs(jobs::JobsArgs),
    /// `<department> status | list | events | tool NAME 'JSON' | <contributed command> | help`
    #[command(external_subcommand)]
    Department(Vec<String>),
}

/// Parses the command line, runs the command and maps the outcome to an exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            errln!("error: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(error) if is_broken_pipe(&error) => ExitCode::SUCCESS,
        Err(error) => {
            errln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// A reader that stopped reading (`rusvel-host plugins --json | head`) is not an error.
fn is_broken_pipe(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let mut config = HostConfig::new(&cli.plugins, &cli.data_dir);
    config.agent_script = cli.agent_script.clone();
    if let Some(cache_dir) = &cli.cache_dir {
        config.cache_dir = Some(cache_dir.clone());
    }
    let host = Arc::new(PluginHost::load(config).await?);
    let code = match &cli.command {
        Command::Plugins => {
            output::print_plugins(&host, cli.json)?;
            ExitCode::SUCCESS
        }
        Command::Worker(args) => jobs::worker(host.clone(), args, cli.json).await?,
        Command::Jobs(args) => jobs::jobs(&host, args, cli.json).await?,
        Command::Department(args) => department::run(&host, &cli.data_dir, cli.json, args).await?,
    };
    if let Err(error) = host.shutdown_all().await {
        tracing::warn!(%error, "shutdown reported an error");
    }
    Ok(code)
}

/// Where log lines go: stderr, or nowhere once stderr is closed (a log line that cannot be
/// written must not stop the command; the subscriber's own fallback would panic).
struct LogSink(std::io::Stderr);

impl std::io::Write for LogSink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        Ok(self.0.write(buf).unwrap_or(buf.len()))
    }

    fn flush(&mut self) -> std::io::Result<()> {
        let _ = self.0.flush();
        Ok(())
    }
}

/// Structured logs on stderr, filtered by `RUST_LOG` (default `warn`).
fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    // Colour only for a person at a terminal; redirected logs stay plain text.
    let colour = std::io::IsTerminal::is_terminal(&std::io::stderr())
        && std::env::var_os("NO_COLOR").is_none();
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(|| LogSink(std::io::stderr()))
        .with_ansi(colour)
        .init();
}
