//! Binding the telemetry datagram socket, shared by `serve` and `dump`.
//!
//! Unlike the reference, this never removes something at the path that is
//! not a stale socket: a regular file (or directory, …) is refused, and a
//! socket another live process is bound to is refused too. The socket file
//! is created under umask 0077 (mode 0600), then chowned/chmodded as asked,
//! and removed again when the [`BoundSocket`] is dropped, if it is still ours.

use std::ffi::CString;
use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::os::unix::io::AsRawFd;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};

/// Longest path that fits `sockaddr_un.sun_path` with its terminating NUL.
pub(crate) const MAX_PATH_BYTES: usize = 107;
/// Receive buffer requested for the socket (the kernel may clamp it).
pub(crate) const RCVBUF_BYTES: libc::c_int = 4 * 1024 * 1024;

/// Why the socket could not be set up. Each message names the path and what
/// to do about it.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SocketError {
    /// The path does not fit `sun_path`.
    #[error("socket path '{0}' is {1} bytes long; the limit is {MAX_PATH_BYTES} bytes: choose a shorter path")]
    PathTooLong(PathBuf, usize),
    /// Something that is not a socket is at the path.
    #[error("'{0}' exists and is not a socket: refusing to replace it (remove it or choose another --listen path)")]
    NotASocket(PathBuf),
    /// A live process is bound to the socket at the path.
    #[error("another process is already receiving on '{0}' (is another ingester running?)")]
    InUse(PathBuf),
    /// The group name is unknown.
    #[error("unknown group '{0}' for --socket-group")]
    UnknownGroup(String),
    /// An OS call failed.
    #[error("{what} '{path}': {source}")]
    Os {
        /// What was being done.
        what: &'static str,
        /// The socket path.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
}

/// A bound socket; removes its file on drop if the file is still this socket.
#[derive(Debug)]
pub(crate) struct BoundSocket {
    /// The socket.
    pub(crate) socket: UnixDatagram,
    path: PathBuf,
    dev_ino: (u64, u64),
}

impl Drop for BoundSocket {
    fn drop(&mut self) {
        if let Ok(m) = std::fs::symlink_metadata(&self.path) {
            if m.file_type().is_socket() && (m.dev(), m.ino()) == self.dev_ino {
                let _ = std::fs::remove_file(&self.path);
            }
        }
    }
}

/// `--socket-group` as a number: `None` when it is a name (not all digits),
/// else the GID, or why it is not one. 4294967295 is refused: it is
/// `(gid_t)-1`, which chown(2) takes as "leave the group unchanged".
pub(crate) fn numeric_gid(group: &str) -> Option<Result<u32, String>> {
    if group.is_empty() || !group.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(match group.parse::<u32>() {
        Ok(gid) if gid != u32::MAX => Ok(gid),
        _ => Err(format!(
            "socket-group GID must be below 4294967295, got '{group}'"
        )),
    })
}

/// Resolves `--socket-group`: an all-digit GID or a group name.
pub(crate) fn resolve_group(group: &str) -> Result<u32, SocketError> {
    if let Some(gid) = numeric_gid(group) {
        return gid.map_err(|_| SocketError::UnknownGroup(group.to_string()));
    }
    let name = CString::new(group).map_err(|_| SocketError::UnknownGroup(group.to_string()))?;
    // SAFETY: `libc::group` is a plain C struct of integers and pointers,
    // for which all zero bytes is a valid value (null pointers); getgrnam_r
    // fills it before anything reads it.
    let mut grp: libc::group = unsafe { std::mem::zeroed() };
    let mut buf = vec![0 as libc::c_char; 16384];
    let mut result: *mut libc::group = std::ptr::null_mut();
    // SAFETY: all pointers are valid for the duration of the call and `buf`
    // is as long as the length we pass.
    let rc = unsafe {
        libc::getgrnam_r(
            name.as_ptr(),
            &mut grp,
            buf.as_mut_ptr(),
            buf.len(),
            &mut result,
        )
    };
    if rc != 0 || result.is_null() {
        return Err(SocketError::UnknownGroup(group.to_string()));
    }
    Ok(grp.gr_gid)
}

fn os<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> SocketError + 'a {
    move |source| SocketError::Os {
        what,
        path: path.to_path_buf(),
        source,
    }
}

/// Binds a datagram socket at `path` with the reference's semantics (see the
/// module docs for where we differ). The socket is left blocking.
pub(crate) fn bind(
    path: &Path,
    mode: u32,
    group: Option<&str>,
) -> Result<BoundSocket, SocketError> {
    let len = path.as_os_str().len();
    if len > MAX_PATH_BYTES {
        return Err(SocketError::PathTooLong(path.to_path_buf(), len));
    }
    let gid = group.map(resolve_group).transpose()?;
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_socket() => {
            // A socket someone still receives on accepts a connect(); a stale
            // one refuses it.
            let probe = UnixDatagram::unbound().map_err(os("cannot create a socket for", path))?;
            match probe.connect(path) {
                Ok(()) => return Err(SocketError::InUse(path.to_path_buf())),
                Err(e) if e.raw_os_error() == Some(libc::ECONNREFUSED) => {
                    std::fs::remove_file(path).map_err(os("cannot remove stale socket", path))?;
                }
                Err(e) => return Err(os("cannot probe existing socket", path)(e)),
            }
        }
        Ok(_) => return Err(SocketError::NotASocket(path.to_path_buf())),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(os("cannot inspect", path)(e)),
    }
    // SAFETY: umask only swaps the process file-creation mask; restored below.
    let old = unsafe { libc::umask(0o077) };
    let bound = UnixDatagram::bind(path);
    // SAFETY: as above.
    unsafe { libc::umask(old) };
    let socket = bound.map_err(os("cannot bind", path))?;
    let meta = std::fs::symlink_metadata(path).map_err(os("cannot inspect", path))?;
    let bs = BoundSocket {
        socket,
        path: path.to_path_buf(),
        dev_ino: (meta.dev(), meta.ino()),
    };
    if let Some(gid) = gid {
        std::os::unix::fs::chown(path, None, Some(gid))
            .map_err(os("cannot change the group of", path))?;
    }
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .map_err(os("cannot chmod", path))?;
    let size = RCVBUF_BYTES;
    // SAFETY: valid fd, pointer to a c_int of the stated size. Failure is
    // harmless (the kernel default stays), so the result is ignored.
    unsafe {
        libc::setsockopt(
            bs.socket.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            &size as *const _ as *const libc::c_void,
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
    Ok(bs)
}

/// Below this many queued datagrams per socket
/// (`net.unix.max_dgram_qlen`) `serve` warns at start (Linux's default is
/// 512).
pub const LOW_DGRAM_QLEN: u32 = 128;

/// The kernel's limit on datagrams queued to one UNIX datagram socket
/// (`net.unix.max_dgram_qlen` of this network namespace), if readable.
/// Sockets take it when they are created.
pub fn kernel_dgram_qlen() -> Option<u32> {
    std::fs::read_to_string("/proc/sys/net/unix/max_dgram_qlen")
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// What to tell the operator about a `net.unix.max_dgram_qlen` of `qlen`:
/// nothing when it is at least [`LOW_DGRAM_QLEN`].
pub(crate) fn dgram_qlen_advice(qlen: u32) -> Option<String> {
    (qlen < LOW_DGRAM_QLEN).then(|| {
        format!(
            "net.unix.max_dgram_qlen is {qlen}: the kernel queues at most {} datagrams for \
             this socket, so a burst from many mod_wsgi processes while the receive thread \
             is not running is lost (counted in seq_gaps); on hosts \
             with many processes raise it (sysctl -w net.unix.max_dgram_qlen=512, or \
             conf-examples/sysctl.d/60-mod_wsgi-telemetry.conf) and restart the ingester: \
             a socket takes the limit when it is created",
            qlen + 1
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn low_dgram_qlen_gets_advice_naming_the_sysctl_and_the_fix() {
        let a = dgram_qlen_advice(10).expect("10 is low");
        assert!(a.starts_with("net.unix.max_dgram_qlen is 10: "), "{a}");
        assert!(a.contains("at most 11 datagrams"), "{a}");
        assert!(a.contains("sysctl -w net.unix.max_dgram_qlen=512"), "{a}");
        assert!(a.contains("restart the ingester"), "{a}");
        assert!(dgram_qlen_advice(LOW_DGRAM_QLEN - 1).is_some());
        assert_eq!(dgram_qlen_advice(LOW_DGRAM_QLEN), None);
        assert_eq!(dgram_qlen_advice(512), None);
    }

    #[test]
    fn bind_replace_refuse_and_cleanup() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t.sock");
        let s = bind(&p, 0o660, None).unwrap();
        let m = std::fs::metadata(&p).unwrap();
        assert_eq!(m.permissions().mode() & 0o7777, 0o660);
        // live socket: refused
        assert!(matches!(bind(&p, 0o660, None), Err(SocketError::InUse(_))));
        // stale socket (bound, file left, socket closed): replaced
        drop(s);
        drop(UnixDatagram::bind(&p).unwrap()); // closed, file left behind
        let s2 = bind(&p, 0o600, None).unwrap();
        drop(s2);
        assert!(!p.exists(), "socket file removed on drop");
        // regular file: refused and left alone
        std::fs::write(&p, b"precious").unwrap();
        assert!(matches!(
            bind(&p, 0o660, None),
            Err(SocketError::NotASocket(_))
        ));
        assert_eq!(std::fs::read(&p).unwrap(), b"precious");
        // too long
        let long = dir.path().join("x".repeat(120));
        assert!(matches!(
            bind(&long, 0o660, None),
            Err(SocketError::PathTooLong(..))
        ));
        assert!(matches!(
            resolve_group("no-such-group-xyz"),
            Err(SocketError::UnknownGroup(_))
        ));
        assert_eq!(resolve_group("0").unwrap(), 0);
        assert_eq!(resolve_group("root").unwrap(), 0);
    }
}
