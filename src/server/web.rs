//! The player's files: the `web/` folder embedded in the binary, or a folder on disk (`--web-dir`, for working
//! on the player without rebuilding). Only files inside the folder are ever served.

use std::borrow::Cow;
use std::path::{Component, Path, PathBuf};

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse};

use super::error::ApiError;

#[derive(rust_embed::Embed)]
#[folder = "web/"]
struct Embedded;

/// Where the player's files come from.
pub enum WebFiles {
    Embedded,
    Dir(PathBuf),
}

impl WebFiles {
    pub fn new(dir: Option<PathBuf>) -> WebFiles {
        dir.map_or(WebFiles::Embedded, WebFiles::Dir)
    }

    /// The file at the URL path `path` (without the leading `/`; empty means `index.html`).
    pub async fn serve(&self, req: &HttpRequest, path: &str) -> Result<HttpResponse, ApiError> {
        let path = if path.is_empty() || path.ends_with('/') {
            Cow::Owned(format!("{path}index.html"))
        } else {
            Cow::Borrowed(path)
        };
        let relative =
            safe_relative(&path).ok_or_else(|| ApiError::not_found(format!("no file /{path}")))?;
        match self {
            WebFiles::Embedded => {
                let file = Embedded::get(&path)
                    .ok_or_else(|| ApiError::not_found(format!("no file /{path}")))?;
                let etag = format!(
                    "\"{}\"",
                    file.metadata
                        .sha256_hash()
                        .iter()
                        .take(12)
                        .map(|b| format!("{b:02x}"))
                        .collect::<String>()
                );
                if if_none_match(req, &etag) {
                    return Ok(HttpResponse::NotModified()
                        .insert_header((header::ETAG, etag))
                        .finish());
                }
                Ok(HttpResponse::Ok()
                    .insert_header((header::CONTENT_TYPE, content_type(&path)))
                    .insert_header((header::ETAG, etag))
                    // Revalidate every time: a new binary may carry a new player.
                    .insert_header((header::CACHE_CONTROL, "no-cache"))
                    .body(file.data.into_owned()))
            }
            WebFiles::Dir(dir) => {
                let full = dir.join(relative);
                // A symbolic link inside the folder must not lead outside it.
                let inside = match (full.canonicalize(), dir.canonicalize()) {
                    (Ok(full), Ok(root)) => full.starts_with(root) && full.is_file(),
                    _ => false,
                };
                if !inside {
                    return Err(ApiError::not_found(format!("no file /{path}")));
                }
                let file = actix_web::web::block(move || actix_files::NamedFile::open(full))
                    .await
                    .map_err(|e| ApiError::Internal(e.to_string()))?
                    .map_err(|_| ApiError::not_found(format!("no file /{path}")))?
                    .set_content_type(
                        content_type(&path)
                            .parse()
                            .unwrap_or(mime_guess::mime::APPLICATION_OCTET_STREAM),
                    )
                    .disable_content_disposition();
                let mut response = file.into_response(req);
                response.headers_mut().insert(
                    header::CACHE_CONTROL,
                    header::HeaderValue::from_static("no-cache"),
                );
                Ok(response)
            }
        }
    }
}

/// The path as plain components below the folder, or `None` for anything that could leave it (`..`, absolute
/// paths, backslashes, drive letters, NUL) or names a hidden file.
fn safe_relative(path: &str) -> Option<PathBuf> {
    if path.contains(['\\', '\0', ':']) {
        return None;
    }
    let mut out = PathBuf::new();
    for component in Path::new(path).components() {
        match component {
            Component::Normal(name) if !name.to_string_lossy().starts_with('.') => out.push(name),
            _ => return None,
        }
    }
    (!out.as_os_str().is_empty()).then_some(out)
}

fn content_type(path: &str) -> String {
    let extension = Path::new(path)
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or_default()
        .to_ascii_lowercase();
    match extension.as_str() {
        // Module scripts need a JavaScript type; mime_guess's older name for it also works, this is the standard.
        "js" | "mjs" => "text/javascript; charset=utf-8".to_string(),
        "html" | "htm" => "text/html; charset=utf-8".to_string(),
        "css" => "text/css; charset=utf-8".to_string(),
        "json" | "map" => "application/json".to_string(),
        "svg" => "image/svg+xml".to_string(),
        _ => mime_guess::from_ext(&extension)
            .first_or_octet_stream()
            .to_string(),
    }
}

/// Whether the request's `If-None-Match` names `etag` (or `*`).
pub fn if_none_match(req: &HttpRequest, etag: &str) -> bool {
    req.headers()
        .get_all(header::IF_NONE_MATCH)
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|tag| tag.trim().trim_start_matches("W/"))
        .any(|tag| tag == etag || tag == "*")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_relative_paths_are_served() {
        assert_eq!(safe_relative("player.js"), Some(PathBuf::from("player.js")));
        assert_eq!(safe_relative("lib/a.js"), Some(PathBuf::from("lib/a.js")));
        for bad in [
            "../Cargo.toml",
            "a/../../x",
            "/etc/passwd",
            "a\\..\\b",
            ".git/config",
            "c:/x",
            "",
            "a/./b/..",
        ] {
            assert_eq!(safe_relative(bad), None, "{bad}");
        }
    }

    #[test]
    fn scripts_are_javascript() {
        assert!(content_type("player.js").starts_with("text/javascript"));
        assert!(content_type("index.html").starts_with("text/html"));
        assert_eq!(content_type("icon.png"), "image/png");
    }
}
