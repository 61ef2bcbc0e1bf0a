//! The `sftp` subsystem of a node's SSH endpoint (russh-sftp server), as a node's OpenSSH
//! serves it: clients upload and read files on the node. The node's filesystem is simulated
//! in memory per node ([`SimState::node_file`]); paths are absolute or relative to `/root`,
//! root's home. Unsupported requests answer `SSH_FX_OP_UNSUPPORTED`, never hang.

use std::collections::{BTreeSet, HashMap};

use russh::Channel;
use russh::server::Msg;
use russh_sftp::protocol::{
    Attrs, Data, File, FileAttributes, Handle, Name, OpenFlags, Status, StatusCode, Version,
};

use crate::state::SimState;

/// Serves SFTP on `channel` for `node` until the client closes it.
pub async fn serve(channel: Channel<Msg>, state: SimState, node: &str) {
    let session = SftpSession {
        state,
        node: node.to_string(),
        handles: HashMap::new(),
        next: 0,
    };
    russh_sftp::server::run(channel.into_stream(), session).await;
}

enum Open {
    File { path: String, write: bool },
    Dir { path: String, done: bool },
}

struct SftpSession {
    state: SimState,
    node: String,
    handles: HashMap<String, Open>,
    next: u64,
}

/// `path` made absolute (relative to `/root`) and normalised (`.`, `..`, doubled slashes).
fn normalise(path: &str) -> String {
    let full = if path.starts_with('/') {
        path.to_string()
    } else {
        format!("/root/{path}")
    };
    let mut parts: Vec<&str> = Vec::new();
    for p in full.split('/') {
        match p {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    format!("/{}", parts.join("/"))
}

fn ok(id: u32) -> Status {
    Status {
        id,
        status_code: StatusCode::Ok,
        error_message: "Success".into(),
        language_tag: "en-US".into(),
    }
}

fn file_attrs(len: u64) -> FileAttributes {
    let mut a = FileAttributes::empty();
    a.size = Some(len);
    a.uid = Some(0);
    a.gid = Some(0);
    a.permissions = Some(0o100644);
    a
}

fn dir_attrs() -> FileAttributes {
    let mut a = FileAttributes::empty();
    a.size = Some(4096);
    a.uid = Some(0);
    a.gid = Some(0);
    a.permissions = Some(0o040755);
    a
}

impl SftpSession {
    fn handle(&mut self, open: Open) -> String {
        self.next += 1;
        let h = format!("h{}", self.next);
        self.handles.insert(h.clone(), open);
        h
    }

    fn attrs(&self, path: &str) -> Result<FileAttributes, StatusCode> {
        if let Some(data) = self.state.node_file(&self.node, path) {
            return Ok(file_attrs(data.len() as u64));
        }
        if self.state.node_dir_exists(&self.node, path) {
            return Ok(dir_attrs());
        }
        Err(StatusCode::NoSuchFile)
    }
}

impl russh_sftp::server::Handler for SftpSession {
    type Error = StatusCode;

    fn unimplemented(&self) -> Self::Error {
        StatusCode::OpUnsupported
    }

    async fn init(
        &mut self,
        _version: u32,
        _extensions: HashMap<String, String>,
    ) -> Result<Version, Self::Error> {
        Ok(Version::new())
    }

    async fn realpath(&mut self, id: u32, path: String) -> Result<Name, Self::Error> {
        let p = normalise(&path);
        Ok(Name {
            id,
            files: vec![File::dummy(p)],
        })
    }

    async fn open(
        &mut self,
        id: u32,
        filename: String,
        pflags: OpenFlags,
        _attrs: FileAttributes,
    ) -> Result<Handle, Self::Error> {
        let path = normalise(&filename);
        let parent = path.rsplit_once('/').map(|(d, _)| d).unwrap_or("/");
        let exists = self.state.node_file(&self.node, &path).is_some();
        let write = pflags.intersects(OpenFlags::WRITE | OpenFlags::APPEND);
        if self.state.node_dir_exists(&self.node, &path) {
            return Err(StatusCode::Failure);
        }
        if !exists {
            if !pflags.contains(OpenFlags::CREATE) {
                return Err(StatusCode::NoSuchFile);
            }
            if !self.state.node_dir_exists(&self.node, parent) {
                return Err(StatusCode::NoSuchFile);
            }
            self.state.put_node_file(&self.node, &path, Vec::new());
        } else if pflags.contains(OpenFlags::CREATE) && pflags.contains(OpenFlags::EXCLUDE) {
            return Err(StatusCode::Failure);
        } else if pflags.contains(OpenFlags::TRUNCATE) {
            self.state.put_node_file(&self.node, &path, Vec::new());
        }
        let handle = self.handle(Open::File { path, write });
        Ok(Handle { id, handle })
    }

    async fn write(
        &mut self,
        id: u32,
        handle: String,
        offset: u64,
        data: Vec<u8>,
    ) -> Result<Status, Self::Error> {
        let Some(Open::File { path, write: true }) = self.handles.get(&handle) else {
            return Err(StatusCode::PermissionDenied);
        };
        let mut content = self.state.node_file(&self.node, path).unwrap_or_default();
        let start = usize::try_from(offset).map_err(|_| StatusCode::Failure)?;
        let end = start.checked_add(data.len()).ok_or(StatusCode::Failure)?;
        if content.len() < end {
            content.resize(end, 0);
        }
        content[start..end].copy_from_slice(&data);
        self.state.put_node_file(&self.node, path, content);
        Ok(ok(id))
    }

    async fn read(
        &mut self,
        id: u32,
        handle: String,
        offset: u64,
        len: u32,
    ) -> Result<Data, Self::Error> {
        let Some(Open::File { path, .. }) = self.handles.get(&handle) else {
            return Err(StatusCode::Failure);
        };
        let content = self.state.node_file(&self.node, path).unwrap_or_default();
        let start = usize::try_from(offset).unwrap_or(usize::MAX);
        if start >= content.len() {
            return Err(StatusCode::Eof);
        }
        let end = content.len().min(start.saturating_add(len as usize));
        Ok(Data {
            id,
            data: content[start..end].to_vec(),
        })
    }

    async fn close(&mut self, id: u32, handle: String) -> Result<Status, Self::Error> {
        self.handles.remove(&handle);
        Ok(ok(id))
    }

    async fn stat(&mut self, id: u32, path: String) -> Result<Attrs, Self::Error> {
        let attrs = self.attrs(&normalise(&path))?;
        Ok(Attrs { id, attrs })
    }

    async fn lstat(&mut self, id: u32, path: String) -> Result<Attrs, Self::Error> {
        self.stat(id, path).await
    }

    async fn fstat(&mut self, id: u32, handle: String) -> Result<Attrs, Self::Error> {
        let path = match self.handles.get(&handle) {
            Some(Open::File { path, .. } | Open::Dir { path, .. }) => path.clone(),
            None => return Err(StatusCode::Failure),
        };
        let attrs = self.attrs(&path)?;
        Ok(Attrs { id, attrs })
    }

    async fn setstat(
        &mut self,
        id: u32,
        path: String,
        _attrs: FileAttributes,
    ) -> Result<Status, Self::Error> {
        self.attrs(&normalise(&path))?;
        Ok(ok(id))
    }

    async fn fsetstat(
        &mut self,
        id: u32,
        handle: String,
        _attrs: FileAttributes,
    ) -> Result<Status, Self::Error> {
        if self.handles.contains_key(&handle) {
            Ok(ok(id))
        } else {
            Err(StatusCode::Failure)
        }
    }

    async fn opendir(&mut self, id: u32, path: String) -> Result<Handle, Self::Error> {
        let path = normalise(&path);
        if !self.state.node_dir_exists(&self.node, &path) {
            return Err(StatusCode::NoSuchFile);
        }
        let handle = self.handle(Open::Dir { path, done: false });
        Ok(Handle { id, handle })
    }

    async fn readdir(&mut self, id: u32, handle: String) -> Result<Name, Self::Error> {
        let Some(Open::Dir { path, done }) = self.handles.get_mut(&handle) else {
            return Err(StatusCode::Failure);
        };
        if *done {
            return Err(StatusCode::Eof);
        }
        *done = true;
        let path = path.clone();
        let mut files = vec![File::new(".", dir_attrs()), File::new("..", dir_attrs())];
        let mut dirs = BTreeSet::new();
        for (name, len, is_dir) in self.state.node_dir_list(&self.node, &path) {
            if is_dir {
                dirs.insert(name);
            } else {
                files.push(File::new(name, file_attrs(len)));
            }
        }
        files.extend(dirs.into_iter().map(|d| File::new(d, dir_attrs())));
        Ok(Name { id, files })
    }

    async fn mkdir(
        &mut self,
        id: u32,
        path: String,
        _attrs: FileAttributes,
    ) -> Result<Status, Self::Error> {
        let path = normalise(&path);
        if self.attrs(&path).is_ok() {
            return Err(StatusCode::Failure);
        }
        self.state.make_node_dir(&self.node, &path);
        Ok(ok(id))
    }

    async fn remove(&mut self, id: u32, filename: String) -> Result<Status, Self::Error> {
        if self
            .state
            .remove_node_file(&self.node, &normalise(&filename))
        {
            Ok(ok(id))
        } else {
            Err(StatusCode::NoSuchFile)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::normalise;

    #[test]
    fn paths_are_absolute_and_normalised() {
        assert_eq!(normalise("upload.txt"), "/root/upload.txt");
        assert_eq!(normalise("/tmp//a/./b/../c"), "/tmp/a/c");
        assert_eq!(normalise("../../.."), "/");
        assert_eq!(normalise("."), "/root");
    }
}
