//! The built dashboard (`admin.dashboard_dir`, default `dashboard/dist`) at `/`: files by path,
//! `index.html` for any other path without a file extension (client-side routes). Hashed files
//! under `assets/` are cached for a year; everything else is revalidated (`no-cache`).

use super::answer::Answer;
use crate::outcome::ErrorCode;
use bytes::Bytes;
use std::path::{Path, PathBuf};

pub const DEFAULT_DIR: &str = "dashboard/dist";

/// The file answer for `path` (already known to be a GET or HEAD outside `/api/`).
pub async fn serve(dir: &str, path: &str) -> Answer {
    let Some(relative) = safe_relative(path) else {
        return ErrorCode::RouteNotFound.into();
    };
    let dir = PathBuf::from(dir);
    let wanted = if relative.as_os_str().is_empty() {
        dir.join("index.html")
    } else {
        dir.join(&relative)
    };
    if let Some(answer) = read(&dir, &wanted, relative.starts_with("assets")).await {
        return answer;
    }
    if relative.extension().is_some() {
        return ErrorCode::RouteNotFound.into();
    }
    match read(&dir, &dir.join("index.html"), false).await {
        Some(answer) => answer,
        None => Answer::Body {
            status: 404,
            content_type: "text/plain; charset=utf-8",
            cache_control: "no-store",
            body: Bytes::from(format!(
                "The dashboard is not built: run `make dashboard` (needs npm), or set admin.dashboard_dir (looked in {}).\n",
                dir.display()
            )),
        },
    }
}

/// The path below the dashboard folder, or `None` for anything that could leave it:
/// `..`, encoded separators or dots, backslashes, NUL, hidden files.
fn safe_relative(path: &str) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    for segment in path.split('/').filter(|s| !s.is_empty()) {
        if segment.starts_with('.') || segment.contains(['\\', '\0', '%']) || segment.len() > 255 {
            return None;
        }
        out.push(segment);
    }
    Some(out)
}

/// `file`'s answer, when it is a file that really lies inside `dir` (a symbolic link out of
/// the folder is not followed).
async fn read(dir: &Path, file: &Path, immutable: bool) -> Option<Answer> {
    let (dir, path) = (dir.to_path_buf(), file.to_path_buf());
    let body = tokio::task::spawn_blocking(move || {
        let real = std::fs::canonicalize(&path).ok()?;
        if !real.starts_with(std::fs::canonicalize(&dir).ok()?) {
            return None;
        }
        let meta = std::fs::metadata(&real).ok()?;
        // A bounded read: the dashboard's files are small.
        (meta.is_file() && meta.len() <= 16 << 20).then(|| std::fs::read(&real).ok())?
    })
    .await
    .ok()??;
    let cache_control = if immutable {
        "public, max-age=31536000, immutable"
    } else {
        "no-cache"
    };
    Some(Answer::Body {
        status: 200,
        content_type: content_type(file),
        cache_control,
        body: Bytes::from(body),
    })
}

fn content_type(file: &Path) -> &'static str {
    match file.extension().and_then(|e| e.to_str()).unwrap_or("") {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "json" | "map" => "application/json",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "woff2" => "font/woff2",
        "txt" => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_that_could_leave_the_folder_are_refused() {
        for bad in [
            "/../etc/passwd",
            "/a/../../x",
            "/%2e%2e/x",
            "/.env",
            "/a\\..\\b",
            "/a%2fb",
        ] {
            assert!(safe_relative(bad).is_none(), "{bad}");
        }
        assert_eq!(safe_relative("/"), Some(PathBuf::new()));
        assert_eq!(
            safe_relative("//assets//app.js"),
            Some(PathBuf::from("assets/app.js"))
        );
    }
}
