//! The local copy of the last document this instance applied: `# etcd revision N` on the first
//! line, then the text. Written through a temporary file and a rename, so a crash leaves the old
//! copy or the new one, never half of one; readable by its owner only (the document holds
//! secrets: JWT keys, password hashes).

use super::Document;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

const HEADER: &str = "# etcd revision ";

/// Replaces the copy at `path` with `doc`.
pub fn save(path: &Path, doc: &Document) -> std::io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = std::path::PathBuf::from(tmp);
    {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        // An older file of that name keeps its mode through `open`.
        file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
        writeln!(file, "{HEADER}{}", doc.revision)?;
        file.write_all(doc.text.as_bytes())?;
        file.sync_all()?;
    }
    std::fs::rename(&tmp, path)
}

/// The copy at `path`, if there is a readable one.
pub fn load(path: &Path) -> Result<Document, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let (first, rest) = text.split_once('\n').unwrap_or((&text, ""));
    let revision = first
        .strip_prefix(HEADER)
        .and_then(|r| r.trim().parse().ok())
        .ok_or_else(|| format!("{}: not a copy of an etcd document", path.display()))?;
    Ok(Document {
        text: rest.to_owned(),
        revision,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_saved_copy_loads_as_it_was() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("gateway.yaml.etcd-cache");
        let doc = Document {
            text: "routes: []\n# last line without newline".into(),
            revision: 42,
        };
        save(&path, &doc).expect("saved");
        assert_eq!(load(&path).expect("loaded"), doc);
        let mode = std::fs::metadata(&path).expect("copy").permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "owner only");
        let newer = Document {
            text: "upstreams: {}\n".into(),
            revision: 43,
        };
        save(&path, &newer).expect("saved");
        assert_eq!(load(&path).expect("loaded"), newer);
    }

    #[test]
    fn a_file_that_is_not_a_copy_is_refused() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("other.yaml");
        std::fs::write(&path, "routes: []\n").expect("written");
        assert!(load(&path).expect_err("refused").contains("not a copy"));
        assert!(load(&dir.path().join("missing")).is_err());
    }
}
