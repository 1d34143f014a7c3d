//! A session's workspace as files a person manages (the console's file
//! manager, `/v1/sessions/{id}/files`): list, read, upload, rename, delete
//! and search, with the confinement the tools have (every path opened
//! beneath the workspace in one step; no `..` out, no symlinks out).

use agentd_core::{ErrorCode, Tenant};
pub use agentd_core::{FileEntry, FileHit, FileKind};
use agentd_tools::workspace::{PathError, Want};

use crate::{Runtime, RuntimeError};

/// Largest file read or written through the API.
pub const MAX_FILE: usize = 10 << 20;
/// Most search hits returned.
const MAX_HITS: usize = 200;
/// Bytes of a file searched for content.
const SEARCH_CAP: usize = 1 << 20;

fn path_error(e: PathError) -> RuntimeError {
    match e {
        PathError::Missing(p) => RuntimeError::not_found(ErrorCode::FileNotFound, format!("{p:?} does not exist")),
        PathError::Io(p, why) if why.contains("exists already") => {
            RuntimeError::exists(ErrorCode::FileExists, format!("{p:?} exists already"))
        }
        PathError::Quota(..) => RuntimeError::bad(ErrorCode::QuotaExceeded, e.to_string()),
        other => RuntimeError::bad(ErrorCode::InvalidPath, other.to_string()),
    }
}

/// A workspace file being sent: read as the client takes it (never whole).
pub struct Download {
    pub file: std::fs::File,
    pub size: u64,
    /// The org's download slot, freed when dropped.
    pub slot: DownloadSlot,
}

/// One of an org's download slots.
pub struct DownloadSlot(#[allow(dead_code)] tokio::sync::OwnedSemaphorePermit);

fn join(dir: &str, name: &str) -> String {
    if dir.is_empty() || dir == "." { name.to_string() } else { format!("{}/{name}", dir.trim_end_matches('/')) }
}

impl Runtime {
    /// The session's workspace, after checking the session is the tenant's.
    async fn session_files(&self, t: &Tenant, session_id: &str) -> Result<agentd_tools::Workspace, RuntimeError> {
        self.get_session(t, session_id).await?;
        self.workspace(t, Some(session_id))
            .map_err(|e| RuntimeError::bad(ErrorCode::WorkspaceUnavailable, format!("workspace: {e}")))
    }

    async fn on_pool<T: Send + 'static>(
        &self,
        t: &Tenant,
        f: impl FnOnce() -> Result<T, RuntimeError> + Send + 'static,
    ) -> Result<T, RuntimeError> {
        agentd_tools::pool::run_blocking(&t.org, f)
            .await
            .map_err(|e| RuntimeError::bad(ErrorCode::InternalError, format!("file work failed: {e}")))?
    }

    /// What `path` is: a directory's entries, or `None` for a file.
    pub async fn list_files(&self, t: &Tenant, sid: &str, path: &str) -> Result<Option<Vec<FileEntry>>, RuntimeError> {
        let ws = self.session_files(t, sid).await?;
        let path = path.to_string();
        self.on_pool(t, move || {
            if ws.kind(&path).map_err(path_error)? == Want::File {
                return Ok(None);
            }
            let mut out: Vec<FileEntry> = ws
                .list(&path)
                .map_err(path_error)?
                .into_iter()
                .map(|(name, dir, link, size)| FileEntry {
                    path: join(&path, &name),
                    name,
                    kind: if link {
                        FileKind::Link
                    } else if dir {
                        FileKind::Dir
                    } else {
                        FileKind::File
                    },
                    size,
                })
                .collect();
            out.sort_by(|a, b| (a.kind != FileKind::Dir, &a.name).cmp(&(b.kind != FileKind::Dir, &b.name)));
            Ok(Some(out))
        })
        .await
    }

    /// A file opened for streaming to a client, holding one of the org's
    /// download slots (`[limits] downloads_per_org`) until it is dropped.
    pub async fn open_download(&self, t: &Tenant, sid: &str, path: &str) -> Result<Download, RuntimeError> {
        let slot = self.download_slot(&t.org)?;
        let ws = self.session_files(t, sid).await?;
        let path = path.to_string();
        let (file, size) = self
            .on_pool(t, move || {
                let f = ws.open_read(&path).map_err(path_error)?;
                let size = f.metadata().map(|m| m.len()).unwrap_or(0);
                Ok((f, size))
            })
            .await?;
        Ok(Download { file, size, slot: DownloadSlot(slot) })
    }

    /// A file's bytes (up to [`MAX_FILE`]).
    pub async fn read_file(&self, t: &Tenant, sid: &str, path: &str) -> Result<Vec<u8>, RuntimeError> {
        let ws = self.session_files(t, sid).await?;
        let path = path.to_string();
        self.on_pool(t, move || {
            let (bytes, more) = ws.read_capped(&path, MAX_FILE).map_err(path_error)?;
            if more {
                return Err(RuntimeError::bad(ErrorCode::FileTooLarge, format!("{path:?} is over {MAX_FILE} bytes")));
            }
            Ok(bytes)
        })
        .await
    }

    /// Creates or replaces a file (parents made).
    pub async fn write_file(&self, t: &Tenant, sid: &str, path: &str, bytes: Vec<u8>) -> Result<(), RuntimeError> {
        if bytes.len() > MAX_FILE {
            return Err(RuntimeError::bad(ErrorCode::FileTooLarge, format!("files are at most {MAX_FILE} bytes")));
        }
        let ws = self.session_files(t, sid).await?;
        let path = path.to_string();
        self.on_pool(t, move || ws.write(&path, &bytes).map_err(path_error)).await
    }

    /// Removes a file or an empty directory.
    pub async fn delete_file(&self, t: &Tenant, sid: &str, path: &str) -> Result<(), RuntimeError> {
        let ws = self.session_files(t, sid).await?;
        let path = path.to_string();
        self.on_pool(t, move || ws.remove(&path).map_err(path_error)).await
    }

    /// Renames (moves) a file or directory; an existing target is kept (`409`).
    pub async fn rename_file(&self, t: &Tenant, sid: &str, from: &str, to: &str) -> Result<(), RuntimeError> {
        let ws = self.session_files(t, sid).await?;
        let (from, to) = (from.to_string(), to.to_string());
        self.on_pool(t, move || ws.rename(&from, &to).map_err(path_error)).await
    }

    /// Files whose path or text contains `q` (case-insensitive), at most [`MAX_HITS`].
    pub async fn search_files(&self, t: &Tenant, sid: &str, q: &str) -> Result<Vec<FileHit>, RuntimeError> {
        let ws = self.session_files(t, sid).await?;
        let q = q.to_lowercase();
        self.on_pool(t, move || {
            let mut hits = vec![];
            for path in ws.walk_files(".").map_err(path_error)? {
                if hits.len() >= MAX_HITS {
                    break;
                }
                if path.to_lowercase().contains(&q) {
                    hits.push(FileHit { path: path.clone(), line: None, text: None });
                }
                let Ok((bytes, _)) = ws.read_capped(&path, SEARCH_CAP) else { continue };
                let Ok(text) = std::str::from_utf8(&bytes) else { continue };
                for (i, l) in text.lines().enumerate() {
                    if hits.len() >= MAX_HITS {
                        break;
                    }
                    if l.to_lowercase().contains(&q) {
                        let snippet: String = l.trim().chars().take(200).collect();
                        hits.push(FileHit { path: path.clone(), line: Some(i + 1), text: Some(snippet) });
                    }
                }
            }
            Ok(hits)
        })
        .await
    }
}

/// Most `<file>` references one message may expand.
const MAX_REFS: usize = 20;
/// Largest text file a reference expands to.
const MAX_REF_TEXT: usize = 256 << 10;
/// Largest image a reference attaches.
const MAX_REF_IMAGE: usize = 5 << 20;

/// The media type of an image file by its extension (`None`: not an image).
pub fn image_type(path: &str) -> Option<&'static str> {
    let ext = path.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase())?;
    Some(match ext.as_str() {
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "webp" => "image/webp",
        _ => return None,
    })
}

impl Runtime {
    /// Expands `<file>path</file>` in a message from the session's workspace:
    /// a text file's content inline (`<file path="…">…</file>`), an image
    /// attached (the reference stays as its name). Done when the run is
    /// created, so the journal keeps what the model was given.
    pub(crate) async fn expand_file_refs(
        &self,
        t: &Tenant,
        sid: &str,
        input: &str,
    ) -> Result<(String, Vec<agentd_core::ContentPart>), RuntimeError> {
        use base64::Engine;
        let mut out = String::with_capacity(input.len());
        let mut images = vec![];
        let mut rest = input;
        let mut n = 0;
        while let Some(start) = rest.find("<file>") {
            let Some(len) = rest[start + 6..].find("</file>") else { break };
            n += 1;
            if n > MAX_REFS {
                return Err(RuntimeError::bad(
                    ErrorCode::InvalidPath,
                    format!("at most {MAX_REFS} <file> references per message"),
                ));
            }
            let path = rest[start + 6..start + 6 + len].trim().to_string();
            out.push_str(&rest[..start]);
            rest = &rest[start + 6 + len + 7..];
            let bytes = self.read_file(t, sid, &path).await?;
            if let Some(mime) = image_type(&path) {
                if bytes.len() > MAX_REF_IMAGE {
                    return Err(RuntimeError::bad(
                        ErrorCode::FileTooLarge,
                        format!("{path:?} is over {MAX_REF_IMAGE} bytes"),
                    ));
                }
                let url = format!("data:{mime};base64,{}", base64::engine::general_purpose::STANDARD.encode(&bytes));
                images.push(agentd_core::ContentPart::Image { url, mime_type: Some(mime.into()) });
                out.push_str(&format!("[image {path}]"));
                continue;
            }
            if bytes.len() > MAX_REF_TEXT {
                return Err(RuntimeError::bad(
                    ErrorCode::FileTooLarge,
                    format!("{path:?} is over {MAX_REF_TEXT} bytes"),
                ));
            }
            let text = String::from_utf8(bytes)
                .map_err(|_| RuntimeError::bad(ErrorCode::InvalidPath, format!("{path:?} is not text")))?;
            out.push_str(&format!("<file path=\"{path}\">\n{text}\n</file>"));
        }
        out.push_str(rest);
        Ok((out, images))
    }
}
