//! [`Launcher`]: the stock gateway's `main` (the CLI, `-t`, `hash-password`, start-up), with a
//! program's own middlewares and strategies.

use crate::config::load_with;
use crate::plugin::{Balancer, Middleware, Registry};
use crate::{check_listeners, compile, config_warnings, Cli, Command};
use clap::Parser;
use std::process::ExitCode;

/// The stock gateway (same CLI, signals, reloads and upgrades) with a program's own middlewares
/// and strategies:
///
/// ```no_run
/// # use api_gateway::plugin::{Balancer, Middleware};
/// # fn f<MyAuth: Middleware, MyBalancer: Balancer>() -> std::process::ExitCode {
/// api_gateway::Launcher::new()
///     .middleware::<MyAuth>("my_auth")
///     .balancer::<MyBalancer>("my_balancer")
///     .run()
/// # }
/// ```
#[derive(Default)]
pub struct Launcher {
    registry: Registry,
}

impl Launcher {
    /// The built-in middlewares and strategies.
    pub fn new() -> Launcher {
        Launcher::default()
    }

    /// See [`Registry::middleware`].
    pub fn middleware<M: Middleware>(mut self, name: &str) -> Launcher {
        self.registry.middleware::<M>(name);
        self
    }

    /// See [`Registry::balancer`].
    pub fn balancer<B: Balancer>(mut self, name: &str) -> Launcher {
        self.registry.balancer::<B>(name);
        self
    }

    /// Parses the command line and runs the gateway (or `-t`, `hash-password`) with this
    /// registry. Call it once, from `main`.
    pub fn run(self) -> ExitCode {
        if !crate::plugin::install(self.registry) {
            eprintln!("the gateway's registry was already in use; extensions are not applied");
            return ExitCode::FAILURE;
        }
        main()
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match &cli.command {
        Some(Command::HashPassword) => return hash_password(),
        Some(Command::Config(command)) => return crate::etcd::command::run(&cli.config, command),
        None => {}
    }
    let path = &cli.config;
    // With an `etcd` section, the shared sections come from the document in etcd.
    let etcd = crate::etcd::command::section(path);
    let start = match etcd
        .as_ref()
        .map(|cfg| crate::etcd::command::start_document(cfg, path))
    {
        None => None,
        Some(Ok(start)) => Some(start),
        Some(Err(message)) => {
            eprintln!("{message}");
            return ExitCode::FAILURE;
        }
    };
    let remote = start.as_ref().map(|s| &s.doc);
    let origin = match remote {
        Some(doc) => format!("{} with etcd revision {}", path.display(), doc.revision),
        None => path.display().to_string(),
    };
    let load = || {
        let mut parsed = load_with(path, remote.map(|d| d.text.as_str()));
        parsed.revision = remote.map(|d| d.revision);
        parsed.demo = cli.demo;
        compile(parsed, None)
    };
    let compiled = match crate::memory::on_own_thread(load) {
        Ok(compiled) => compiled,
        Err(e) => {
            eprintln!("{origin}: cannot start a thread to load it: {e}");
            return ExitCode::FAILURE;
        }
    };
    let snapshot = match compiled {
        Ok(s) => s,
        Err(errors) => {
            eprintln!("{origin}: {} problem(s):", errors.len());
            for e in errors.iter() {
                eprintln!("  {e}");
            }
            return ExitCode::FAILURE;
        }
    };
    let warnings = config_warnings(&snapshot);
    if cli.test {
        for w in &warnings {
            eprintln!("warning: {w}");
        }
        println!(
            "{origin}: ok ({} routes, {} upstreams)",
            snapshot.routes.len(),
            snapshot.upstreams.len()
        );
        return ExitCode::SUCCESS;
    }
    crate::init_logging(&snapshot.file.log);
    for w in &warnings {
        log::warn!("{w}");
    }
    if !cli.upgrade {
        if let Err(problems) = check_listeners(&snapshot) {
            // Once each, plain, on stderr (the journal under systemd).
            for p in &problems {
                eprintln!("{p}");
            }
            return ExitCode::FAILURE;
        }
    }
    if let (Some(cfg), Some(start)) = (&etcd, &start) {
        crate::etcd::Status::install(
            crate::etcd::shown_endpoints(cfg),
            crate::etcd::document_key(cfg),
            start.doc.revision,
            start.from_copy,
        );
        if let Some(status) = crate::etcd::status() {
            status.applied(start.doc.revision);
        }
        if !start.from_copy {
            crate::etcd::command::keep_copy(cfg, path, &start.doc);
        }
    }
    // The daemon changes its working directory to /, so the reload path must be absolute.
    let config_path = std::fs::canonicalize(path).unwrap_or_else(|_| path.clone());
    crate::app::run(&cli, config_path, snapshot, start.map(|s| s.doc));
    ExitCode::SUCCESS
}

fn hash_password() -> ExitCode {
    let input = match crate::read_password() {
        Ok(input) => input,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    if input.is_empty() {
        eprintln!("empty password");
        return ExitCode::FAILURE;
    }
    match crate::hash_password(&input) {
        Ok(hash) => {
            println!("{hash}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("hashing failed: {e}");
            ExitCode::FAILURE
        }
    }
}
