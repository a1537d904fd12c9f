//! Start-up with the config in etcd (the document to start from), and the `gateway config`
//! commands.

use super::{cache, document_key, fetch_once, push, Document, Expect, Pushed};
use crate::cli::ConfigCommand;
use crate::config::file::EtcdConfig;
use crate::config::{load_file, load_with};
use crate::snapshot::compile;
use std::path::Path;
use std::process::ExitCode;

/// The document a process starts with.
pub struct Start {
    pub doc: Document,
    /// Read from the local copy: etcd could not be reached.
    pub from_copy: bool,
}

/// The file's `etcd` section, if it parses (its problems are reported by the full load).
pub fn section(config_path: &Path) -> Option<EtcdConfig> {
    load_file(config_path).file.etcd
}

/// Runs `fut` to completion on a runtime of its own (before the server's runtimes exist).
fn block_on<T>(fut: impl std::future::Future<Output = T>) -> Result<T, String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start a runtime: {e}"))?;
    Ok(rt.block_on(fut))
}

/// The document to start with when the config comes from etcd: read from etcd, or, when etcd
/// cannot be reached, the local copy of the last one applied. `Err` says why the process cannot
/// start.
pub fn start_document(cfg: &EtcdConfig, config_path: &Path) -> Result<Start, String> {
    let key = document_key(cfg);
    match block_on(fetch_once(cfg))? {
        Ok(Some(doc)) => Ok(Start {
            doc,
            from_copy: false,
        }),
        Ok(None) => Err(format!(
            "no config document at {key} in etcd ({}): write one with `gateway config push FILE`",
            super::shown_endpoints(cfg).join(",")
        )),
        Err(e) => {
            let copy = super::cache_path(cfg, config_path);
            match cache::load(&copy) {
                Ok(doc) => {
                    eprintln!(
                        "warning: {e}; starting from the local copy of revision {} ({}), and watching etcd",
                        doc.revision,
                        copy.display()
                    );
                    Ok(Start {
                        doc,
                        from_copy: true,
                    })
                }
                Err(why) => Err(format!(
                    "cannot start: {e}, and there is no local copy of the config to start from ({why})"
                )),
            }
        }
    }
}

/// Keeps `doc` as the local copy to start from (a warning if it cannot be written).
pub fn keep_copy(cfg: &EtcdConfig, config_path: &Path, doc: &Document) {
    let copy = super::cache_path(cfg, config_path);
    if let Err(e) = cache::save(&copy, doc) {
        log::warn!(
            "cannot keep a local copy of etcd revision {} in {}: {e}",
            doc.revision,
            copy.display()
        );
    }
}

/// `gateway config push|get`.
pub fn run(config_path: &Path, command: &ConfigCommand) -> ExitCode {
    let Some(cfg) = section(config_path) else {
        eprintln!(
            "{}: no etcd section (or one that does not parse: see `gateway -t`)",
            config_path.display()
        );
        return ExitCode::FAILURE;
    };
    let outcome = match command {
        ConfigCommand::Get => get(&cfg),
        ConfigCommand::Push {
            file,
            revision,
            force,
        } => {
            let expect = match (revision, force) {
                (_, true) => Expect::Anything,
                (Some(r), false) => Expect::Revision(*r),
                (None, false) => Expect::Absent,
            };
            push_file(&cfg, config_path, file, expect)
        }
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("{message}");
            ExitCode::FAILURE
        }
    }
}

fn get(cfg: &EtcdConfig) -> Result<(), String> {
    let key = document_key(cfg);
    match block_on(fetch_once(cfg))? {
        Ok(Some(doc)) => {
            print!("{}", doc.text);
            eprintln!("revision {} of {key}", doc.revision);
            Ok(())
        }
        Ok(None) => Err(format!("no document at {key}")),
        Err(e) => Err(e.to_string()),
    }
}

fn push_file(
    cfg: &EtcdConfig,
    config_path: &Path,
    file: &Path,
    expect: Expect,
) -> Result<(), String> {
    let text = std::fs::read_to_string(file)
        .map_err(|e| format!("cannot read {}: {e}", file.display()))?;
    let parsed = load_with(config_path, Some(&text));
    if let Err(errors) = compile(parsed, None) {
        let mut message = format!(
            "{} (with {}): {} problem(s), nothing written:",
            file.display(),
            config_path.display(),
            errors.len()
        );
        for e in errors.iter() {
            message.push_str(&format!("\n  {e}"));
        }
        return Err(message);
    }
    let key = document_key(cfg);
    match block_on(push(cfg, &text, expect))? {
        Ok(Pushed::Written(revision)) => {
            println!("{} written to {key}: revision {revision}", file.display());
            Ok(())
        }
        Ok(Pushed::Conflict(0)) => Err(format!(
            "{key} no longer exists (expected revision {}): push with --force to create it",
            match expect {
                Expect::Revision(r) => r,
                _ => 0,
            }
        )),
        Ok(Pushed::Conflict(current)) => Err(match expect {
            Expect::Revision(r) => format!(
                "{key} is at revision {current}, not {r}: someone pushed since; read it with `gateway config get`, merge, and push with --revision {current}"
            ),
            _ => format!(
                "{key} already holds a document (revision {current}): push with --revision {current} to replace it"
            ),
        }),
        Err(e) => Err(format!("{e}; nothing written")),
    }
}
